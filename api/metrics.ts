/**
 * Prometheus metrics (names per reference/reliability-security.md §3), fed by engine events and
 * read on scrape from Redis for sizes.
 */
import client from 'prom-client';
import { rowsKey } from '../views/store/keys.ts';
import type { RedisClient } from '../views/store/redis.ts';
import { ENGINE_EVENTS, type BatchAppliedEvent, type Engine } from '../views/engine.ts';
import type { Registry } from '../views/registry.ts';
import type { SnapshotProgress } from '../ingest/index.ts';
import type { ChangelogHub } from './changelog-hub.ts';
import type { ReactionOutcome } from '../reactions/runner.ts';
import type { ReactionBacklog } from '../reactions/groups.ts';

export interface Metrics {
  readonly registry: client.Registry;
  snapshotProgress(progress: SnapshotProgress): void;
  /** A reaction handled, skipped, retried, parked or lost a change. */
  reactionOutcome(reaction: string, outcome: ReactionOutcome): void;
  /** A GraphQL request over HTTP, by the path it took (api/fast-lane.ts). */
  graphqlRequest(lane: 'fast' | 'yoga'): void;
  /** A subscription payload made (executed and serialized): once per change and group of subscribers (api/shared-subscriptions.ts). */
  subscriptionPayload(): void;
  /** Where each reaction stands (measured by the process writing the views). */
  reactionBacklogs(backlogs: readonly ReactionBacklog[]): void;
}

/** `engine` is null on an API-only instance, `hub` on an ingest-only one: their metrics are then absent. */
export function createMetrics(options: {
  views: Registry;
  redis: RedisClient;
  prefix: string;
  engine: Engine | null;
  hub: ChangelogHub | null;
}): Metrics {
  const { engine, hub } = options;
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'cdc_views_' });
  const eventsApplied = new client.Counter({
    name: 'cdc_views_events_applied_total',
    help: 'Source changes applied to the views.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const duplicates = new client.Counter({
    name: 'cdc_views_batches_skipped_duplicate_total',
    help: 'Batches skipped because their position was already applied (replays after a restart).',
    registers: [registry],
  });
  const skipped = new client.Counter({
    name: 'cdc_views_changes_skipped_total',
    help: 'Changes skipped because their row already had them or a newer change, or recognised as re-sent copies while their transaction was assembled (at-least-once sources: Debezium re-sends).',
    registers: [registry],
  });
  const fanoutSteps = new client.Counter({
    name: 'cdc_views_fanout_steps_total',
    help: 'Steps that joined a chunk of a join fan-out (a change meeting more than redis.fanoutChunk rows), after the step that deferred it.',
    registers: [registry],
  });
  const deadLetters = new client.Counter({
    name: 'cdc_views_dead_letters_total',
    help: 'Changes parked in the dead-letter stream.',
    registers: [registry],
  });
  const applyDuration = new client.Histogram({
    name: 'cdc_views_apply_duration_seconds',
    help: 'Time of one atomic apply step in Redis.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const commitToApply = new client.Histogram({
    name: 'cdc_views_commit_to_apply_seconds',
    help: 'From the source commit to the views being updated in Redis.',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const lag = new client.Gauge({
    name: 'cdc_views_source_lag_seconds',
    help: 'Now minus the commit time of the last applied source transaction.',
    registers: [registry],
  });
  const snapshotRows = new client.Gauge({
    name: 'cdc_views_snapshot_rows',
    help: 'Rows read by the initial snapshot, per table.',
    labelNames: ['table'] as const,
    registers: [registry],
  });
  new client.Gauge({
    name: 'cdc_views_subscriptions_active',
    help: 'Open subscriptions per view.',
    labelNames: ['view'] as const,
    registers: [registry],
    collect() {
      for (const view of options.views.views) this.set({ view: view.name }, hub?.active.get(view.name) ?? 0);
    },
  });
  new client.Gauge({
    name: 'cdc_views_view_rows',
    help: 'Rows per view.',
    labelNames: ['view'] as const,
    registers: [registry],
    async collect() {
      for (const view of options.views.views) {
        this.set(
          { view: view.name },
          await options.redis.sendCommand<number>(['HLEN', rowsKey(options.prefix, view.storage)]),
        );
      }
    },
  });
  new client.Gauge({
    name: 'cdc_views_ready',
    help: '1 when the views are live (snapshot done or resumed) and the pipeline is healthy.',
    registers: [registry],
    collect() {
      this.set(engine ? (engine.ready ? 1 : 0) : hub!.health().ready ? 1 : 0);
    },
  });
  const PIPELINE_STATES = [
    'starting',
    'waiting-for-lease',
    'building',
    'live',
    'retrying',
    'stopped',
  ] as const;
  new client.Gauge({
    name: 'cdc_views_pipeline_state',
    help: '1 for the state the ingest pipeline is in (waiting-for-lease: another instance writes).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const state = engine?.health().state;
      for (const s of PIPELINE_STATES) this.set({ state: s }, s === state ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'cdc_views_view_state',
    help: '1 for the state each view is in (building, live, stopped).',
    labelNames: ['view', 'state'] as const,
    registers: [registry],
    collect() {
      const views = engine ? engine.health().views : hub!.health().views;
      for (const view of options.views.views) {
        const state = views.get(view.name)?.state;
        for (const s of ['building', 'live', 'stopped'] as const)
          this.set({ view: view.name, state: s }, s === state ? 1 : 0);
      }
    },
  });
  new client.Gauge({
    name: 'cdc_views_backfill_rows',
    help: "A view being backfilled beside the live ones: rows read so far per table (kind=read), and PostgreSQL's estimate of the table (kind=estimated).",
    labelNames: ['view', 'table', 'kind'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [view, status] of engine?.health().views ?? []) {
        if (status.state !== 'building' || !status.backfill) continue;
        for (const t of status.backfill.tables) {
          this.set({ view, table: t.table, kind: 'read' }, t.rows);
          this.set({ view, table: t.table, kind: 'estimated' }, t.estimatedRows);
        }
      }
    },
  });
  new client.Gauge({
    name: 'cdc_views_pipeline_lag_seconds',
    help: 'Age of the oldest change received from the source and not yet applied.',
    registers: [registry],
    collect() {
      this.set((engine?.health().lagMs ?? 0) / 1000);
    },
  });
  // What each view costs the writer: set from the engine's running totals on each scrape.
  new client.Counter({
    name: 'cdc_views_view_plan_seconds_total',
    help: "Time each view's operators spent planning changes (scans, state lookups, arithmetic, packing writes), without waiting for Redis: which view costs the CPU.",
    labelNames: ['view'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [view, cost] of engine?.viewCosts ?? []) this.inc({ view }, cost.ms / 1000);
    },
  });
  new client.Counter({
    name: 'cdc_views_view_writes_total',
    help: "Redis writes each view's operators planned (operator state, rows, indexes, changelog entries): which view costs Redis.",
    labelNames: ['view'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [view, cost] of engine?.viewCosts ?? []) this.inc({ view }, cost.writes);
    },
  });
  const stateLost = new client.Counter({
    name: 'cdc_views_state_lost_total',
    help: 'Times Redis did not hold what the writer had written (restart without persistence, older dump, failover), by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const rebuilds = new client.Counter({
    name: 'cdc_views_rebuilds_total',
    help: 'Rebuilds of every view from a fresh snapshot.',
    registers: [registry],
  });
  const viewsStopped = new client.Counter({
    name: 'cdc_views_views_stopped_total',
    help: 'Views stopped because they could no longer be kept exact (schema change, a change they could not apply).',
    labelNames: ['view'] as const,
    registers: [registry],
  });
  engine?.on(ENGINE_EVENTS.STATE_LOST, (e: { resumed?: boolean }) =>
    stateLost.inc({ outcome: e.resumed ? 'resumed' : 'rebuilt' }),
  );
  engine?.on(ENGINE_EVENTS.REBUILD, () => rebuilds.inc());
  engine?.on(ENGINE_EVENTS.VIEW_STOPPED, (e: { view: string }) => viewsStopped.inc({ view: e.view }));

  let lastCommitUs: number | undefined;
  setInterval(
    () => lastCommitUs !== undefined && lag.set(Math.max(0, Date.now() / 1000 - lastCommitUs / 1e6)),
    1000,
  ).unref();
  engine?.on(ENGINE_EVENTS.BATCH_APPLIED, (e: BatchAppliedEvent) => {
    if (e.fanout) fanoutSteps.inc();
    if (e.duplicate) duplicates.inc();
    else eventsApplied.inc({ kind: e.snapshot ? 'snapshot' : 'stream' }, e.changes);
    if (e.deadLetters) deadLetters.inc(e.deadLetters);
    if (e.skipped) skipped.inc(e.skipped);
    applyDuration.observe(e.applyMs / 1000);
    if (e.commitTimeUs !== undefined) {
      lastCommitUs = e.commitTimeUs;
      commitToApply.observe(Math.max(0, Date.now() / 1000 - e.commitTimeUs / 1e6));
    }
  });
  const reactions = new client.Counter({
    name: 'cdc_views_reaction_changes_total',
    help: 'Changes per reaction by outcome: handled, skipped (not selected by when), retried (an attempt failed), dead-lettered (gave up), lost (trimmed before handled).',
    labelNames: ['reaction', 'outcome'] as const,
    registers: [registry],
  });
  const backlog = new client.Gauge({
    name: 'cdc_views_reaction_backlog',
    help: 'Changes waiting for a reaction: pending (delivered to a worker, not acknowledged) and undelivered; the changelog keeps them until handled.',
    labelNames: ['reaction', 'state'] as const,
    registers: [registry],
  });
  const reactionDeadLetters = new client.Gauge({
    name: 'cdc_views_reaction_dead_letters',
    help: 'Changes parked in a reaction’s dead letters (replay with `cdc-views reactions replay <name>`).',
    labelNames: ['reaction'] as const,
    registers: [registry],
  });
  const graphqlRequests = new client.Counter({
    name: 'cdc_views_graphql_http_requests_total',
    help: 'GraphQL requests over HTTP by path: fast (a known query document, executed directly) or yoga (everything else).',
    labelNames: ['lane'] as const,
    registers: [registry],
  });
  const subscriptionPayloads = new client.Counter({
    name: 'cdc_views_subscription_payloads_total',
    help: 'Subscription payloads executed and serialized: once per change and group of subscribers with the same role, document and variables, however many subscribers the group has.',
    registers: [registry],
  });
  return {
    registry,
    graphqlRequest: (lane) => graphqlRequests.inc({ lane }),
    subscriptionPayload: () => subscriptionPayloads.inc(),
    snapshotProgress: (p) => snapshotRows.set({ table: p.table }, p.rows),
    reactionOutcome: (reaction, outcome) => reactions.inc({ reaction, outcome }),
    reactionBacklogs: (backlogs) => {
      for (const b of backlogs) {
        backlog.set({ reaction: b.reaction, state: 'pending' }, b.pending);
        if (b.undelivered !== null)
          backlog.set({ reaction: b.reaction, state: 'undelivered' }, b.undelivered);
        reactionDeadLetters.set({ reaction: b.reaction }, b.deadLetters);
      }
    },
  };
}
