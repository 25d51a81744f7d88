/**
 * The loop that keeps the views: source → plan → one atomic Redis step → acknowledge.
 *
 *   waiting-for-lease ──▶ (bootstrap.ts: resume | rebuild) ──▶ building ──▶ live ⇄ retrying
 *          ▲                                                                  │
 *          └──────────── fenced (another writer) · state lost (Redis) ◀───────┘
 *
 *            ┌──────────── read ahead (bounded) ────────────┐
 *   source ──┤ batch, batch, batch …                        ├──▶ take everything waiting (group commit)
 *            └──────────────────────────────────────────────┘        │
 *                                                                    ▼
 *                    runBatch (plan/run.ts: the operators step, reading state through the cache)
 *                    → writeStep (one Lua call: fencing token and step check, operator state,
 *                    views, changelog, dead letters, checkpoint) → durable? (store/durability.ts)
 *                    → source.ack(position) → events
 *
 * While one group is being applied, the next one accumulates, so a busy source gets large atomic
 * steps (throughput) and a quiet one gets a step per transaction (latency). A transaction too
 * large for one step arrives in parts and is applied part by part (each part one short step,
 * readers of the views it touches wait for its last part).
 *
 * One writer: the engine writes only while it holds the deployment's lease, and every step checks
 * the lease's token and the step counter inside Redis, so a second instance, a paused process or
 * a Redis that lost writes is caught before anything is written. Failing: Redis errors retry the
 * same group (nothing was applied: the script is atomic); source errors restart the pipeline from
 * the stored checkpoint; errors in the config or the source schema stop the engine with their
 * message.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Change, ChangeBatch, ChangeSource, SchemaChange, SourcePosition } from '../ingest/change.ts';
import { ServiceError } from '../core/errors.ts';
import {
  advance,
  Backfill,
  changePositions,
  coveredBy,
  decodeWindow,
  encodeWindow,
  reached,
  type BackfillWindow,
  type Positions,
} from './backfill.ts';
import { decideStart } from './bootstrap.ts';
import { StateLostError } from './errors.ts';
import { buildDataflow, type Dataflow, type ViewCosts } from './plan/graph.ts';
import {
  imageKeysOf,
  inNamespace,
  mergeImageWrites,
  resolveWithImages,
  type ImageWrites,
  type StoredImages,
} from './plan/row-images.ts';
import { resetViews, runBatch, type RunResult } from './plan/run.ts';
import { planFanoutChunk, readFanouts, storeDeferred } from './plan/fanout.ts';
import { STATE_LAYOUT_VERSION, withViews, type CompiledView, type Registry } from './registry.ts';
import { schemaChangeEffects } from './schema-changes.ts';
import { StateStore, type WriteOp } from './store/state-store.ts';
import { writeStep, type DeadLetter, type StepControl, type StepWrites } from './store/write-step.ts';
import { AckGate, resolveDurability, type ResolvedDurability } from './store/durability.ts';
import {
  BACKFILL_WINDOW_FIELD,
  busyKey,
  FANOUT_BUSY,
  imagesKey,
  keyPrefix,
  metaKey,
  requestsKey,
  RETIRED_FIELD,
  rowsKey,
} from './store/keys.ts';
import { WriterLease } from './store/lease.ts';
import type { RedisClient } from './store/redis.ts';
import {
  dropAbandonedSwaps,
  dropBackfillImages,
  dropStorages,
  dropViews,
  FencedError,
  mergeImages,
  prepareBackfill,
  readStoredState,
  wipeForRebuild,
  writeMeta,
  type StoredState,
  type ViewStatus,
} from './store/state.ts';
import { encodeDefinitions, retiredViews } from './stored-definitions.ts';
import { ViewInput } from './operators/view-input.ts';
import type { DeltaBatch, Operator } from './operators/types.ts';

/**
 * Changes one step takes at most when transactions queue up (a catch-up, a burst): a bigger step
 * folds more changes to the same rows into one write (its catch-up did 33 % more events per
 * CPU-second at 5,000 than at 2,000) but holds Redis longer (≈ 130 ms against ≈ 85 ms for the
 * example's sixteen views). A live service with a quiet queue steps each transaction alone.
 */
export const DEFAULT_STEP_CHANGES = 5000;

export interface EngineOptions {
  readonly registry: Registry;
  /** The writer's own connection: the write steps (and WAITAOF/WAIT) run on it alone. */
  readonly redis: RedisClient;
  /** A connection for the lease and small reads, so renewal never queues behind a write step. */
  readonly control?: RedisClient;
  /** A fresh source per (re)start of the pipeline. */
  readonly createSource: () => ChangeSource;
  /** Changes per atomic step at most, in whole transactions (DEFAULT_STEP_CHANGES). */
  readonly maxBatchChanges?: number;
  readonly changelogMaxLength?: number;
  /** Rows of the other side a join key may have before its changes are joined in chunks, after their step. */
  readonly fanoutChunk?: number;
  /** Views reactions read: their changelogs are trimmed behind the slowest reaction, not by the write step. */
  readonly reactedViews?: ReadonlySet<string>;
  /** When steps may be acknowledged (store/durability.ts); default: what Redis's settings allow. */
  readonly durability?: ResolvedDurability;
  readonly ackGate?: AckGate;
  readonly leaseTtlMs?: number;
  readonly log?: (
    level: 'info' | 'warn' | 'error',
    message: string,
    fields?: Record<string, unknown>,
  ) => void;
}

export const ENGINE_EVENTS = {
  /** A group of batches landed in Redis: BatchAppliedEvent. */
  BATCH_APPLIED: 'engine.batch_applied',
  /** The initial snapshot finished and the views are live. */
  SNAPSHOT_DONE: 'engine.snapshot_done',
  /** The views were wiped and are being rebuilt: { reason, lost }. */
  REBUILD: 'engine.rebuild',
  /** The pipeline failed and will restart: { error }. */
  RESTART: 'engine.restart',
  /** Redis did not hold what this writer had written: { reason }. */
  STATE_LOST: 'engine.state_lost',
  /** A view stopped being served: { view, reason }. */
  VIEW_STOPPED: 'engine.view_stopped',
  /** The pipeline state changed: EngineHealth. */
  STATE: 'engine.state',
} as const;

export interface BatchAppliedEvent {
  readonly transactions: number;
  readonly changes: number;
  readonly snapshot: boolean;
  readonly duplicate: boolean;
  readonly changelogEntries: number;
  /** Writes the step carried (operator state, rows, changelog entries…): how large it was. */
  readonly writes: number;
  /** A chunk of a join fan-out (plan/fanout.ts), not a batch of the source. */
  readonly fanout: boolean;
  readonly deadLetters: number;
  /** Changes dropped as already applied to their row, or as re-sent copies the source recognised (at-least-once sources). */
  readonly skipped: number;
  readonly views: readonly string[];
  readonly position: SourcePosition;
  /** Source commit time of the newest transaction in the group (µs since epoch). */
  readonly commitTimeUs: number | undefined;
  readonly applyMs: number;
  /** Logical messages carried by the group's transactions. */
  readonly messages: readonly { prefix: string; content: string }[];
}

export type PipelineState = 'starting' | 'waiting-for-lease' | 'building' | 'live' | 'retrying' | 'stopped';

export interface EngineHealth {
  readonly state: PipelineState;
  /** Why the pipeline is not live, in words. */
  readonly reason: string | null;
  /** Age of the oldest change received but not yet applied (ms). */
  readonly lagMs: number;
  readonly views: ReadonlyMap<string, ViewStatus>;
  readonly durability: ResolvedDurability | null;
}

/** Why a view's history starts over after join fan-outs (its chunks are not logged row by row). */
const FANOUT_RESET = 'a join fan-out too large to log row by row';

const FATAL_CODES = new Set(['CONFIG_INVALID', 'SOURCE_SCHEMA', 'SOURCE_INCOMPLETE']);

/** Asked for by a schema change: restart the pipeline, which then rebuilds. */
class RebuildRequested extends Error {}

export class Engine extends EventEmitter {
  readonly prefix: string;
  private readonly options: EngineOptions;
  private readonly lease: WriterLease;
  private readonly gate: AckGate;
  private source: ChangeSource | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  /** Why the current pipeline must end now (lease lost, Redis went back in time). */
  private abort: Error | null = null;
  private state: PipelineState = 'starting';
  private reason: string | null = null;
  private readonly statuses = new Map<string, ViewStatus>();
  /** The last step this process wrote, and the one the next step must find in Redis. */
  private lastStep: number | null = null;
  private step = 0;
  private processStart = true;
  /** Receive times of batches not yet applied (for lag). */
  private readonly pendingSince: number[] = [];
  /**
   * The views the dataflow keeps: the config's and, while their views' new definitions are built
   * beside them, the retired definitions still served (stored-definitions.ts).
   */
  private registry: Registry;
  /** Every view's operators, and the state they read (cached, kept in step by this writer). */
  private flow: Dataflow;
  /**
   * Per view, what planning its changes cost since the process started: milliseconds of its
   * operators and the Redis writes they planned (metrics: which view costs the CPU and Redis).
   */
  readonly viewCosts: ViewCosts = new Map();
  /** Retired definitions in the dataflow (named by their storage) → the view each serves. */
  private retired = new Map<string, string>();
  /** Views whose new definition is built beside the served one → the served fingerprint. */
  private swapping = new Map<string, string>();
  /** The config's definitions as data (stored with each view's fingerprint). */
  private readonly definitions: Map<string, string>;
  private readonly store: StateStore;
  /** Views touched by the parts of a transaction applied in parts so far. */
  private readonly busy = new Set<string>();
  /** Views busy until the stored join fan-outs are finished (plan/fanout.ts), outside a transaction in parts. */
  private readonly fanoutViews = new Set<string>();
  /** Views to backfill when the pipeline starts (decided by prepare), and the backfill running. */
  private toBackfill = new Map<string, string>();
  private backfill: Backfill | null = null;
  /** Views a backfill handed over, until the main stream passes what it applied (backfill.ts). */
  private window: BackfillWindow | null = null;
  private windowReached = false;
  /** Per stream: the main stream's applied position, and the furthest change it applied. */
  private mainPosition: Positions = new Map();
  private mainApplied: Positions = new Map();
  /** Whether a part of a main transaction is applied and its last part not yet. */
  private mainMidTransaction = false;

  constructor(options: EngineOptions) {
    super();
    this.options = options;
    this.prefix = keyPrefix(options.registry.name);
    this.lease = new WriterLease({
      redis: options.control ?? options.redis,
      prefix: this.prefix,
      ...(options.leaseTtlMs === undefined ? {} : { ttlMs: options.leaseTtlMs }),
      log: (level, message, fields) => options.log?.(level, message, fields),
    });
    this.registry = options.registry;
    this.flow = this.buildFlow();
    this.definitions = encodeDefinitions(options.registry.views);
    this.store = new StateStore(options.redis);
    this.gate =
      options.ackGate ??
      new AckGate(
        options.durability ??
          resolveDurability(
            { version: '0', appendonly: false, appendfsync: null, connectedReplicas: 0 },
            { mode: 'none' },
          ),
      );
  }

  private buildFlow(): Dataflow {
    return buildDataflow(this.registry.views, this.prefix, {
      changelogMaxLength: this.options.changelogMaxLength ?? 10_000,
      untrimmed: this.options.reactedViews ?? new Set(),
      ...(this.options.fanoutChunk === undefined ? {} : { fanoutChunk: this.options.fanoutChunk }),
      costs: this.viewCosts,
    });
  }

  /** Keep these retired definitions in the dataflow (none: the config's views only). */
  private useRetired(views: readonly CompiledView[]): void {
    if (views.length === 0 && this.retired.size === 0) return;
    this.retired = new Map(views.map((v) => [v.name, v.serves!]));
    this.registry = views.length === 0 ? this.options.registry : withViews(this.options.registry, views);
    this.flow = this.buildFlow();
  }

  /** True once views are live (snapshot done, or resumed) and the pipeline is healthy. */
  get ready(): boolean {
    return this.state === 'live';
  }

  health(): EngineHealth {
    const oldest = this.pendingSince[0];
    return {
      state: this.state,
      reason: this.reason,
      lagMs: oldest === undefined ? 0 : Date.now() - oldest,
      views: new Map([...this.statuses].filter(([view]) => !this.retired.has(view))),
      durability: this.gate.durability,
    };
  }

  /** Run until stop() or a fatal error (rejects with it). */
  start(): Promise<void> {
    this.running ??= this.supervise();
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.source?.close();
    await this.running?.catch(() => undefined);
    this.gate.reset();
    // Hand over at once: a rolling deploy's next instance takes the lease without waiting for its TTL.
    await this.lease.release();
    this.setState('stopped', null);
  }

  private setState(state: PipelineState, reason: string | null): void {
    if (this.state === state && this.reason === reason) return;
    this.state = state;
    this.reason = reason;
    this.emit(ENGINE_EVENTS.STATE, this.health());
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void {
    this.options.log?.(level, message, fields);
  }

  /** End the running pipeline because of `error` (from outside the loop: lease renewal). */
  private interrupt(error: Error): void {
    if (this.abort) return;
    this.abort = error;
    void this.source?.close();
  }

  private async supervise(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      if (this.lease.token === null) {
        this.setState('waiting-for-lease', 'waiting for the writer lease');
        const token = await this.lease.acquire({ aborted: () => this.stopping });
        if (token === null) return;
        this.lease.keepAlive(
          (stored, atSend) => {
            // Redis went back in time under us (restart without persistence, older dump, failover).
            if (atSend !== null && (stored === '' || Number(stored) < atSend)) {
              this.interrupt(
                new StateLostError(
                  `Redis holds step ${stored || 'none'}, but this writer had written step ${atSend}`,
                ),
              );
            }
          },
          (why, empty) =>
            this.interrupt(
              empty
                ? new StateLostError(`Redis holds neither the lease nor a checkpoint any more (${why})`)
                : new FencedError(why),
            ),
          () => this.lastStep,
        );
      }
      this.abort = null;
      try {
        await this.runPipeline(() => {
          failures = 0;
        });
        if (this.abort) throw this.abort;
        if (this.stopping) return;
      } catch (error) {
        if (this.stopping) return;
        if (error instanceof ServiceError && FATAL_CODES.has(error.code)) {
          await this.lease.release();
          throw error;
        }
        if (error instanceof FencedError) {
          this.lease.stopKeepAlive();
          this.lease.token = null;
          this.log('warn', 'another writer holds this deployment now; stopped writing', {
            error: error.message,
          });
          continue;
        }
        if (error instanceof StateLostError) {
          // Take the lease again before looking at what Redis holds (it may have lost the lease too).
          this.lease.stopKeepAlive();
          this.lease.token = null;
          this.log('error', 'Redis does not hold what this writer wrote; starting again from what it holds', {
            error: error.message,
          });
          this.emit(ENGINE_EVENTS.STATE_LOST, { reason: error.message });
          continue;
        }
        if (error instanceof RebuildRequested) continue;
        failures++;
        const delay = Math.min(100 * 2 ** failures, 10_000);
        this.setState('retrying', `the pipeline failed (${String(error)}); retrying in ${delay} ms`);
        this.log('error', 'pipeline failed; restarting from the stored checkpoint', {
          error: String(error),
          retryInMs: delay,
        });
        this.emit(ENGINE_EVENTS.RESTART, { error });
        await new Promise((r) => setTimeout(r, delay));
      } finally {
        await this.source?.close().catch(() => undefined);
        this.source = null;
        this.gate.reset();
        this.pendingSince.length = 0;
      }
    }
  }

  private async runPipeline(onProgress: () => void): Promise<void> {
    const source = (this.source = this.options.createSource());
    const checkpoint = await this.prepare(source);
    if (this.abort) return;
    // Join fan-outs a step stored before a crash or restart: finished before anything else.
    await this.finishFanouts(source);
    if (this.abort) return;
    if (checkpoint !== null) this.setState('live', null);
    this.mainPosition = new Map((checkpoint ?? []).map((p) => [p.stream, p.token]));
    this.mainApplied = new Map(this.mainPosition);
    this.mainMidTransaction = false;
    this.windowReached = this.window !== null && reached(this.mainPosition, this.window.until);
    const queue: ChangeBatch[] = [];
    let queuedChanges = 0;
    // Wake-ups between the reader and the applier (held in an object: TS cannot see closure writes).
    const waiting: { wake: (() => void) | null; drained: (() => void) | null } = {
      wake: null,
      drained: null,
    };
    let finished = false;
    let failure: unknown = null;
    const maxChanges = this.options.maxBatchChanges ?? DEFAULT_STEP_CHANGES;
    const signal = (): void => {
      waiting.wake?.();
      waiting.wake = null;
    };

    const reader = (async () => {
      try {
        for await (const batch of source.start(checkpoint)) {
          queue.push(batch);
          this.pendingSince.push(Date.now());
          queuedChanges += batch.changes.length;
          signal();
          while (queuedChanges > maxChanges * 4 && !this.stopping && !this.abort)
            await new Promise<void>((r) => (waiting.drained = r));
          if (this.stopping || this.abort) break;
        }
      } catch (error) {
        failure = error;
      } finally {
        finished = true;
        signal();
      }
    })();

    const backfill = (this.backfill =
      this.toBackfill.size > 0 ? this.startBackfill(source, maxChanges, signal) : null);
    // `cdc-views rebuild` leaves a request: start the pipeline again, which takes it (bootstrap.ts);
    // not while the first build runs (it would start over), but once the views are live.
    const requests = setInterval(() => {
      if (this.state !== 'live') return;
      (this.options.control ?? this.options.redis)
        .sendCommand<number>(['HLEN', requestsKey(this.prefix)])
        .then((n) => {
          if (n > 0) this.interrupt(new RebuildRequested('an operator asked to rebuild views'));
        })
        .catch(() => undefined);
    }, 1000);
    let backfillTurn = true;

    let inFlight: Promise<void> = Promise.resolve();
    // A step that fails for good must end the loop at once, not wait for the next batch to notice.
    let stepFailure: { error: unknown } | null = null;
    const track = (step: Promise<void>): Promise<void> => {
      step.catch((error: unknown) => {
        stepFailure ??= { error };
        signal();
      });
      return step;
    };
    try {
      while (!this.stopping && !this.abort) {
        if (stepFailure) throw (stepFailure as { error: unknown }).error;
        // A backfill takes turns with the main stream (so it catches up, and the live views keep
        // moving), and hands over as soon as it holds what the main stream applied.
        if (this.backfill) {
          if (this.backfill.failure) throw this.backfill.failure;
          const handOver = this.backfill.canHandOver(this.mainApplied, this.mainMidTransaction);
          if (handOver || (this.backfill.hasQueued() && (backfillTurn || queue.length === 0))) {
            await inFlight;
            backfillTurn = false;
            if (this.backfill.canHandOver(this.mainApplied, this.mainMidTransaction))
              await this.handOver(source, this.backfill);
            else await this.applyBackfill(source, this.backfill, maxChanges);
            continue;
          }
          backfillTurn = true;
        }
        if (this.windowReached) {
          await inFlight;
          await this.closeWindow();
        }
        if (queue.length === 0) {
          if (finished) break;
          await new Promise<void>((r) => (waiting.wake = r));
          continue;
        }
        // While a hand-over's window on scans is open, a group never mixes transactions the
        // backfill applied with later ones (each group is judged as a whole).
        const window = this.window;
        const group = takeGroup(
          queue,
          maxChanges,
          window && !window.images ? (b) => coveredBy(b, window.until) : undefined,
        );
        queuedChanges -= group.reduce((n, b) => n + b.changes.length, 0);
        waiting.drained?.();
        waiting.drained = null;
        const done = (): void => {
          this.pendingSince.splice(0, group.length);
          onProgress();
          // The step passed an open window: close it now, not when the next batch wakes the loop.
          if (this.windowReached) signal();
        };
        // Plan this group while the previous one is still being applied (Node and Redis work in
        // parallel); apply and acknowledge strictly in order.
        if (source.delivery === 'at-least-once' || group.some((b) => b.schemaChanges?.length)) {
          // Row images (and statuses changed by a schema change) must reflect the previous batch first;
          // and a join fan-out it defers is finished before the next group is planned.
          await inFlight;
          inFlight = track(this.applyResolved(source, group).then(done));
          await inFlight;
          continue;
        }
        let planned = await this.plan(group, null);
        await inFlight;
        // The step before failed and was retried: what was planned meanwhile read a cache that is gone.
        if (planned.generation !== this.store.generation) planned = await this.plan(group, null);
        inFlight = track(this.apply(source, planned).then(done));
        // Join fan-outs it deferred run before anything else is planned (their buckets must not move).
        if (planned.deferred) {
          await inFlight;
          inFlight = track(this.finishFanouts(source));
          await inFlight;
        }
      }
      await inFlight;
    } finally {
      clearInterval(requests);
      waiting.drained?.();
      await backfill?.close();
      this.backfill = null;
      await source.close().catch(() => undefined);
      await reader;
    }
    if (failure && !this.stopping && !this.abort) throw failure;
  }

  /** Views the busy hash holds for join fan-outs (not for a transaction in parts). */
  private async fanoutBusyViews(): Promise<Set<string>> {
    const flat = await this.options.redis.sendCommand<string[]>(['HGETALL', busyKey(this.prefix)]);
    const views = new Set<string>();
    for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i + 1] === FANOUT_BUSY) views.add(flat[i]!);
    return views;
  }

  /** Resume from the stored checkpoint or rebuild (bootstrap.ts); returns the checkpoint, or null to snapshot. */
  private async prepare(source: ChangeSource): Promise<SourcePosition | null> {
    const { redis, registry } = this.options;
    const token = this.lease.token;
    if (token === null) throw new FencedError(null);
    const fingerprints = JSON.stringify(
      Object.fromEntries(registry.views.map((v) => [v.name, v.fingerprint])),
    );
    // The config's views only, until this start decides to keep retired definitions again.
    this.useRetired([]);
    const stored = await readStoredState(redis, this.prefix);
    const decision = await decideStart(
      stored,
      {
        layout: String(STATE_LAYOUT_VERSION),
        fingerprints,
        lastStep: this.lastStep,
        processStart: this.processStart,
        canBackfill: typeof source.backfill === 'function',
        dependents: this.flow.dependents,
      },
      source,
    );
    this.processStart = false;
    this.statuses.clear();
    this.store.invalidate();
    this.busy.clear();
    this.fanoutViews.clear();
    this.toBackfill = new Map();
    this.swapping = new Map();
    // Storages a finished swap left behind (a crash came before they were deleted).
    if (stored.retired.length > 0) {
      await dropStorages(redis, this.prefix, token, new Set(stored.retired));
      await writeMeta(redis, this.prefix, token, {}, [RETIRED_FIELD]);
    }
    if (decision.action === 'resume') {
      if (decision.warning) {
        this.log('error', decision.warning, { checkpoint: decision.checkpoint });
        this.emit(ENGINE_EVENTS.STATE_LOST, { reason: decision.warning, resumed: true });
      } else
        this.log('info', 'resuming views from the stored checkpoint', { checkpoint: decision.checkpoint });
      if (decision.definitions) this.log('info', decision.definitions);
      if (decision.removed.length > 0) {
        // Views dropped from the config: their keys go; the others resume where they were.
        await dropViews(redis, this.prefix, token, decision.removed, fingerprints);
        this.log(
          'info',
          'views removed from the config: their state is deleted; the others resume untouched',
          { removed: decision.removed },
        );
      }
      for (const [view, status] of stored.views)
        if (!decision.removed.includes(view)) this.statuses.set(view, status);
      // A hand-over's window goes on across restarts, unless its views are built again or gone.
      this.window = stored.window ? decodeWindow(stored.window) : null;
      if (this.window?.views.some((v) => decision.backfill.has(v) || decision.removed.includes(v))) {
        await writeMeta(redis, this.prefix, token, {}, [BACKFILL_WINDOW_FIELD]);
        this.window = null;
      }
      // Row images of a backfill that did not finish, or of a window dropped (at-least-once sources).
      if (
        source.delivery === 'at-least-once' &&
        (decision.backfill.size > 0 || (stored.window !== null && this.window === null))
      ) {
        await dropBackfillImages(redis, this.prefix, token, this.window?.images ?? null);
      }
      const current = {
        fingerprints: Object.fromEntries(registry.views.map((v) => [v.name, v.fingerprint])),
        definitions: this.definitions,
      };
      // A source that lost the beginning of what a backfill reads cannot build those views exactly.
      const unreadable =
        decision.backfill.size > 0 && source.rereadProblem
          ? await source.rereadProblem(this.tablesOf(decision.backfill.keys()))
          : null;
      if (unreadable !== null) {
        await prepareBackfill(redis, this.prefix, token, decision.backfill, current, new Map());
        const status: ViewStatus = {
          state: 'stopped',
          reason: `it cannot be backfilled: ${unreadable}`,
          since: Date.now(),
        };
        await writeMeta(
          redis,
          this.prefix,
          token,
          Object.fromEntries(
            [...decision.backfill.keys()].map((v) => [`status:${v}`, JSON.stringify(status)]),
          ),
        );
        for (const view of decision.backfill.keys()) this.statuses.set(view, status);
        this.log('error', 'views that cannot be backfilled are stopped', {
          views: [...decision.backfill.keys()],
          reason: unreadable,
        });
      } else if (decision.backfill.size > 0) {
        const retired = this.retire(stored, decision.backfill);
        const building = await prepareBackfill(
          redis,
          this.prefix,
          token,
          decision.backfill,
          current,
          this.swapping,
        );
        for (const [view, status] of building) this.statuses.set(view, status);
        for (const view of retired) this.statuses.set(view.name, stored.views.get(view.serves!)!);
        this.useRetired(retired);
        this.toBackfill = new Map(decision.backfill);
        this.log('info', 'backfilling views while the others stay live', {
          views: Object.fromEntries(decision.backfill),
          ...(this.swapping.size > 0 ? { servedUntilSwapped: [...this.swapping.keys()] } : {}),
        });
      }
      // A swap an earlier start began for a definition this config no longer has: its keys go.
      const abandoned = new Map(
        [...stored.next.keys()]
          .filter((v) => !decision.backfill.has(v) && !decision.removed.includes(v) && stored.served.has(v))
          .map((v) => [v, stored.served.get(v)!.fingerprint]),
      );
      if (abandoned.size > 0) {
        await dropAbandonedSwaps(redis, this.prefix, token, abandoned);
        this.log(
          'info',
          'a new definition was being built beside these views; this config serves theirs: it is deleted',
          {
            views: [...abandoned.keys()],
          },
        );
      }
      // A view in the middle of a transaction applied in parts: its served definition is.
      const retiredOf = new Map([...this.retired].map(([storage, view]) => [view, storage]));
      // Views waiting for join fan-outs are not part of a transaction: finishFanouts ends their wait.
      const fanoutBusy = await this.fanoutBusyViews();
      for (const view of stored.busy) {
        if (fanoutBusy.has(view)) this.fanoutViews.add(retiredOf.get(view) ?? view);
        else this.busy.add(retiredOf.get(view) ?? view);
      }
      // Taken (only now, once the views say they are building), or for views this config lacks.
      if (stored.requests.size > 0)
        await redis.sendCommand(['HDEL', requestsKey(this.prefix), ...stored.requests.keys()]);
      this.step = this.lastStep = decision.step;
      return decision.checkpoint;
    }
    const unreadable = source.rereadProblem
      ? await source.rereadProblem(registry.tables.map((t) => t.name))
      : null;
    if (unreadable !== null)
      throw new ServiceError(
        'SOURCE_INCOMPLETE',
        `The views must be built (${decision.reason}), but: ${unreadable}`,
      );
    this.log(decision.lost ? 'error' : 'info', 'building views from a fresh snapshot', {
      reason: decision.reason,
    });
    if (decision.lost) this.emit(ENGINE_EVENTS.STATE_LOST, { reason: decision.reason, resumed: false });
    this.emit(ENGINE_EVENTS.REBUILD, { reason: decision.reason, lost: decision.lost });
    this.setState('building', decision.reason);
    await wipeForRebuild(redis, this.prefix, token, {
      layout: String(STATE_LAYOUT_VERSION),
      fingerprints,
      views: registry.views.map((v) => ({
        name: v.name,
        fingerprint: v.fingerprint,
        definition: this.definitions.get(v.name)!,
      })),
      reason: decision.reason,
    });
    const building: ViewStatus = { state: 'building', reason: decision.reason, since: Date.now() };
    for (const v of registry.views) this.statuses.set(v.name, building);
    this.step = this.lastStep = 0;
    this.window = null;
    return null;
  }

  /**
   * Which views to backfill keep serving their old definition until the new one takes over: those
   * live whose definition changed, when the stored old definition can still be kept up to date
   * (stored-definitions.ts). Sets `swapping`; returns the retired definitions.
   */
  private retire(stored: StoredState, backfill: ReadonlyMap<string, string>): CompiledView[] {
    const candidates = new Set<string>();
    for (const view of backfill.keys()) {
      const served = stored.served.get(view);
      if (
        served?.definition &&
        stored.views.get(view)?.state === 'live' &&
        served.fingerprint !== this.options.registry.byName.get(view)!.fingerprint
      )
        candidates.add(view);
    }
    if (candidates.size === 0) return [];
    const { views, problems } = retiredViews(
      this.options.registry,
      {
        definitions: new Map(
          [...stored.served].flatMap(([v, s]) => (s.definition ? [[v, s.definition] as const] : [])),
        ),
        fingerprints: new Map([...stored.served].map(([v, s]) => [v, s.fingerprint])),
      },
      candidates,
      new Set(backfill.keys()),
    );
    for (const [view, why] of problems)
      this.log('warn', 'a changed view is not served while its new definition is built', { view, why });
    this.swapping = new Map(views.map((v) => [v.serves!, v.fingerprint]));
    return views;
  }

  private stoppedViews(): Set<string> {
    return new Set([...this.statuses].filter(([, s]) => s.state === 'stopped').map(([v]) => v));
  }

  /**
   * Plan a group: its changes (resolved against stored row images for at-least-once sources) run
   * through the dataflow. `stopping`: views this step stops (schema changes), left out with their
   * reason.
   */
  private async plan(
    group: ChangeBatch[],
    stored: StoredImages | null,
    stopping: ReadonlyMap<string, string> = new Map(),
    windowImages: StoredImages | null = null,
  ): Promise<PlannedGroup> {
    const generation = this.store.generation;
    const received = group.flatMap((b) => b.changes);
    const resolved = stored ? resolveWithImages(this.registry, received, stored) : null;
    const part = group.length === 1 ? group[0]!.part : undefined;
    const building = [...this.statuses].filter(([, s]) => s.state === 'building').map(([v]) => v);
    const allViews = this.registry.views.map((v) => v.name);
    // Views going live with this group start a new history; so do the views a transaction in parts touched.
    const resets = new Map<string, string>();
    if (group.some((b) => b.live)) for (const v of building) resets.set(v, 'the view was built');
    if (part?.final) for (const v of this.busy) resets.set(v, 'a transaction too large to log row by row');
    const skip = new Set([
      ...this.stoppedViews(),
      ...stopping.keys(),
      ...(this.backfill?.views.keys() ?? []),
    ]);
    const window = this.window;
    // A window on row images: the handed-over views take their changes resolved against the
    // backfill's images (which skip what it applied), in a second run beside the others'.
    const separate = window?.images && windowImages ? new Set(window.views) : new Set<string>();
    const covered =
      window && !window.images && group.every((b) => coveredBy(b, window.until))
        ? new Set(window.views)
        : undefined;
    const quiet = new Set(part ? allViews : building.filter((v) => !skip.has(v)));
    const result = await runBatch(this.flow, resolved?.changes ?? received, this.store, {
      skip: new Set([...skip, ...separate]),
      quiet,
      resets,
      ...(covered ? { skipScans: covered } : {}),
    });
    let windowWrites: ImageWrites | null = null;
    if (separate.size > 0) {
      const tables = new Set(window!.tables);
      const own = resolveWithImages(
        this.registry,
        received.filter((c) => tables.has(c.table)),
        windowImages!,
      );
      const others = allViews.filter((v) => !separate.has(v));
      // The live views they read feed them what the first run gave.
      const seed = new Map(
        [...result.outputs].filter(
          ([op]) =>
            this.flow.outputs.get(this.flow.owner.get(op)!) === op && !separate.has(this.flow.owner.get(op)!),
        ),
      );
      const more = await runBatch(this.flow, own.changes, this.store, {
        skip: new Set([...skip, ...others]),
        quiet,
        resets,
        seed,
      });
      result.rejected.push(...more.rejected);
      result.deferred.push(...more.deferred);
      result.touched.push(...more.touched.filter((v) => !result.touched.includes(v)));
      windowWrites = inNamespace(own.writes, window!.images!);
    }
    if (part?.final) {
      const more = result.touched.filter((v) => !resets.has(v));
      await resetViews(this.flow, this.store, more, 'a transaction too large to log row by row');
      this.busy.clear();
    } else if (part) {
      // Known now, not when the step lands: the next part is planned before this one lands.
      for (const v of result.touched) this.busy.add(v);
    }
    const deferred = this.deferFanouts(result, part);
    const writes = this.store.takeWrites();
    const deadLetters: DeadLetter[] = [
      ...group.flatMap((b) => b.deadLetters ?? []),
      ...result.rejected.map((r) => ({
        reason: r.reason,
        payload: JSON.stringify({ view: r.view, change: r.change }),
      })),
    ];
    let position: SourcePosition = [];
    for (const b of group) if (b.position.length > 0) position = mergePositions(position, b.position);
    // A change a view could not apply leaves it wrong: stop it (the dead letter says what and why),
    // and every view that reads it.
    const stop = this.stopsOf(result, stopping);
    const images = windowWrites
      ? mergeImageWrites(resolved?.writes ?? null, windowWrites)
      : (resolved?.writes ?? null);
    return {
      group,
      changes: received,
      result,
      writes,
      deadLetters,
      position,
      images,
      skipped: resolved?.skipped ?? 0,
      stop,
      resets,
      generation,
      deferred,
    };
  }

  /**
   * Store the join fan-outs a run deferred with its step, and make the views they change busy
   * (readers wait) until they are finished: within a transaction in parts, until its last part.
   */
  private deferFanouts(result: RunResult, part?: ChangeBatch['part']): boolean {
    if (result.deferred.length === 0) return false;
    storeDeferred(this.store, this.prefix, result.deferred);
    for (const view of new Set(result.deferred.flatMap((d) => d.views))) {
      const served = this.retired.get(view) ?? view;
      if (part && !part.final) {
        this.busy.add(view);
        this.store.hset(busyKey(this.prefix), served, `${part.txn}:${part.index}`);
      } else if (!this.busy.has(view)) {
        this.fanoutViews.add(view);
        this.store.hset(busyKey(this.prefix), served, FANOUT_BUSY);
      }
    }
    return true;
  }

  /**
   * Join every stored fan-out with its bucket, a chunk per step, then end their views' busy time
   * with a reset entry each (a subscriber reads them again, as after a transaction in parts).
   * Nothing else is planned meanwhile, so the buckets stay as the deferring step left them.
   */
  private async finishFanouts(source: ChangeSource): Promise<void> {
    const { redis } = this.options;
    for (
      let jobs = await readFanouts(redis, this.prefix);
      jobs.length > 0;
      jobs = await readFanouts(redis, this.prefix)
    ) {
      if (this.abort || this.stopping) return;
      const job = jobs[0]!;
      for (const v of job.views) if (!this.busy.has(v)) this.fanoutViews.add(v);
      for (let attempt = 0; ; attempt++) {
        const generation = this.store.generation;
        const { result } = await planFanoutChunk(
          this.flow,
          this.store,
          redis,
          this.prefix,
          job,
          this.stoppedViews(),
        );
        const ran = result ?? {
          rejected: [],
          touched: [],
          changelogEntries: 0,
          outputs: new Map(),
          deferred: [],
        };
        const deferred = this.deferFanouts(ran);
        const stop = this.stopsOf(ran, new Map());
        const outcome = await this.apply(source, {
          group: [{ kind: 'transaction', changes: [], position: [] }],
          changes: [],
          result: ran,
          writes: this.store.takeWrites(),
          deadLetters: ran.rejected.map((r) => ({
            reason: r.reason,
            payload: JSON.stringify({ view: r.view, change: r.change }),
          })),
          position: [],
          images: null,
          skipped: 0,
          stop,
          resets: new Map(),
          generation,
          backfill: true,
          deferred,
          fanoutChunk: true,
        });
        if (outcome === 'applied') break;
        this.store.invalidate();
        await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** attempt, 1000)));
      }
    }
    // Redis says which views wait (a replayed step that deferred stored nothing, and marked none).
    const marked = await this.fanoutBusyViews();
    const views = [...this.fanoutViews].filter(
      (v) => !this.busy.has(v) && marked.has(this.retired.get(v) ?? v),
    );
    this.fanoutViews.clear();
    if (views.length === 0) return;
    // Views still building go live with their own reset; the others start a new history here.
    const live = views.filter((v) => this.statuses.get(v)?.state === 'live' && this.flow.outputs.has(v));
    const generation = this.store.generation;
    await resetViews(this.flow, this.store, live, FANOUT_RESET);
    for (const view of views) this.store.hdel(busyKey(this.prefix), this.retired.get(view) ?? view);
    const result: RunResult = {
      rejected: [],
      touched: live,
      changelogEntries: 0,
      outputs: new Map(),
      deferred: [],
    };
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.apply(source, {
        group: [{ kind: 'transaction', changes: [], position: [] }],
        changes: [],
        result,
        writes: this.store.takeWrites(),
        deadLetters: [],
        position: [],
        images: null,
        skipped: 0,
        stop: new Map(),
        resets: new Map(),
        generation,
        backfill: true,
        fanoutChunk: true,
      });
      if (outcome === 'applied') return;
    }
  }

  /**
   * The views a run stops — `stopping` (schema changes) and those a change could not be applied to
   * (it is parked in the dead letters: the view would be wrong) — and every view reading them.
   */
  private stopsOf(result: RunResult, stopping: ReadonlyMap<string, string>): Map<string, string> {
    const stop = new Map<string, string>(stopping);
    for (const r of result.rejected)
      if (!stop.has(r.view))
        stop.set(r.view, `a change it could not apply was parked in the dead-letter stream: ${r.reason}`);
    for (const [view, reason] of [...stop]) {
      for (const dependent of this.flow.dependents.get(view) ?? [])
        if (!stop.has(dependent)) stop.set(dependent, `it reads view ${view}, which stopped: ${reason}`);
    }
    return stop;
  }

  /**
   * Groups that must see the previous step's effects before planning: at-least-once sources (row
   * images, re-planned if an image moved meanwhile) and batches carrying schema changes.
   */
  private async applyResolved(source: ChangeSource, group: ChangeBatch[]): Promise<void> {
    const schemaChanges = group.flatMap((b) => b.schemaChanges ?? []);
    const extraStops =
      schemaChanges.length > 0
        ? await this.onSchemaChanges(schemaChanges, source.rebuildsFrom ?? 'snapshot')
        : new Map<string, string>();
    for (let attempt = 0; ; attempt++) {
      const changes = group.flatMap((b) => b.changes);
      const stored = source.delivery === 'at-least-once' ? await this.readImages(changes) : null;
      const window = this.window;
      const windowImages =
        stored && window?.images
          ? await this.readImages(
              changes.filter((c) => window.tables.includes(c.table)),
              window.images,
            )
          : null;
      const planned = await this.plan(group, stored, extraStops, windowImages);
      const result = await this.apply(source, planned);
      if (result !== 'conflict') {
        if (planned.deferred) await this.finishFanouts(source);
        return;
      }
      this.store.invalidate();
      this.log(
        'warn',
        'a row image changed while the batch was planned (another writer?); planning it again',
        { attempt },
      );
      await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** attempt, 1000)));
    }
  }

  /** Decide what schema changes mean (schema-changes.ts): views to stop now, or a rebuild. */
  private async onSchemaChanges(
    changes: readonly SchemaChange[],
    rebuildsFrom: 'snapshot' | 'log',
  ): Promise<Map<string, string>> {
    const effects = schemaChangeEffects(this.registry, changes, { rebuildsFrom });
    for (const note of effects.notes) this.log('warn', note);
    if (effects.rebuild !== null) {
      this.log('warn', 'rebuilding the views after a schema change', { reason: effects.rebuild });
      const token = this.lease.token;
      if (token === null) throw new FencedError(null);
      await writeMeta(this.options.redis, this.prefix, token, { rebuild: effects.rebuild });
      throw new RebuildRequested(effects.rebuild);
    }
    return new Map(effects.stop.map((s) => [s.view, s.reason]));
  }

  /** The row images of these changes' rows, per table (`namespace`: a backfill's own images). */
  private async readImages(changes: readonly Change[], namespace = ''): Promise<StoredImages> {
    const keys = imageKeysOf(this.registry, changes);
    const stored = new Map<string, Map<string, string | null>>();
    await Promise.all(
      [...keys].map(async ([table, set]) => {
        const list = [...set];
        const values = await this.options.redis.sendCommand<(string | null)[]>([
          'HMGET',
          imagesKey(this.prefix, namespace + table),
          ...list,
        ]);
        stored.set(table, new Map(list.map((k, i) => [k, values[i] ?? null])));
      }),
    );
    return stored;
  }

  private control(
    planned: PlannedGroup,
    token: string,
    stepId: string,
  ): StepControl & { readonly statuses: readonly { view: string; status: string }[] } {
    const { group, result } = planned;
    const part = group.length === 1 ? group[0]!.part : undefined;
    const now = Date.now();
    const live = [...planned.resets.keys()]
      .filter((v) => this.statuses.get(v)?.state === 'building')
      .map((view) => ({ view, status: JSON.stringify({ state: 'live', since: now } satisfies ViewStatus) }));
    const stops = [...planned.stop].map(([view, reason]) => ({
      view,
      status: JSON.stringify({ state: 'stopped', reason, since: now } satisfies ViewStatus),
    }));
    return {
      lease: token,
      step: this.step,
      stepId,
      part: part ? { txn: part.txn, index: part.index, final: part.final } : null,
      busy: part && !part.final ? result.touched.map((v) => this.retired.get(v) ?? v) : [],
      statuses: [...live, ...stops, ...(planned.statuses ?? [])],
      meta: [...live, ...stops, ...(planned.statuses ?? [])].map(({ view, status }) => ({
        field: this.statusField(view, status),
        value: status,
      })),
    };
  }

  /**
   * Where a view's status is stored: a retired definition's is its view's (it is the one served);
   * a definition built beside the served one is `next:<view>` until it goes live.
   */
  private statusField(view: string, status: string): string {
    const served = this.retired.get(view);
    if (served !== undefined) return `status:${served}`;
    if (this.swapping.has(view) && (JSON.parse(status) as ViewStatus).state === 'building')
      return `next:${view}`;
    return `status:${view}`;
  }

  private async apply(source: ChangeSource, planned: PlannedGroup): Promise<'applied' | 'conflict'> {
    const { group, changes, result, deadLetters, images } = planned;
    const { redis } = this.options;
    const part = group.length === 1 ? group[0]!.part : undefined;
    // A part's own position is only a probe: the last part stores the transaction's position.
    const position = part && !part.final ? part.probe : planned.position;
    const started = performance.now();
    const stepId = `${this.step + 1}:${randomBytes(4).toString('hex')}`;
    for (let attempt = 0; ; attempt++) {
      const token = this.lease.token;
      if (token === null || this.abort) throw this.abort ?? new FencedError(null);
      try {
        const control = this.control(planned, token, stepId);
        const outcome = await writeStep(
          redis,
          this.prefix,
          control,
          position,
          planned.writes,
          deadLetters,
          images,
        );
        if (outcome.status === 'fenced') throw new FencedError(outcome.holder || null);
        if (outcome.status === 'lost') {
          throw new StateLostError(
            `the write step found step ${outcome.storedStep || 'none'} in Redis, but this writer last wrote step ${this.step}`,
          );
        }
        if (outcome.status === 'conflict') return 'conflict';
        if (outcome.status === 'applied' || (outcome.status === 'duplicate' && outcome.step !== undefined))
          this.step = this.lastStep = outcome.step!;
        if (!planned.backfill) this.trackMain(part, position, changes);
        // A replay was planned on state that already held it: the cache took its writes as if they
        // landed a second time. Forget it (and re-plan what was planned on it meanwhile).
        if (outcome.status === 'duplicate' && planned.writes.length > 0) this.store.invalidate();
        this.afterStep(control, planned);
        if (position.length > 0 && !(part && !part.final))
          await this.gate.afterStep(redis, () => source.ack(position));
        const snapshot = group.some((b) => b.kind === 'snapshot');
        const last = group.findLast((b) => b.commitTimeUs !== undefined);
        const event: BatchAppliedEvent = {
          transactions: group.filter((b) => b.kind === 'transaction' && (!b.part || b.part.final)).length,
          changes: changes.length,
          snapshot,
          duplicate: outcome.status === 'duplicate',
          changelogEntries:
            outcome.status === 'applied' ? planned.writes.entries : 0,
          writes: planned.writes.length,
          fanout: planned.fanoutChunk ?? false,
          deadLetters: deadLetters.length,
          skipped: planned.skipped + group.reduce((n, b) => n + (b.skipped ?? 0), 0),
          views: [...new Set(result.touched.map((v) => this.retired.get(v) ?? v))],
          position,
          commitTimeUs: last?.commitTimeUs,
          applyMs: performance.now() - started,
          messages: group.flatMap((b) => b.messages ?? []),
        };
        this.emit(ENGINE_EVENTS.BATCH_APPLIED, event);
        return 'applied';
      } catch (error) {
        if (
          this.stopping ||
          !(error instanceof ServiceError && error.retriable) ||
          error instanceof StateLostError
        )
          throw error;
        // What was planned after this step assumed it landed: plan it again once it has.
        this.store.invalidate();
        const delay = Math.min(50 * 2 ** attempt, 5000);
        this.setState('retrying', `writing to Redis failed (${String(error)}); retrying`);
        this.log('warn', 'Redis apply failed; retrying the same batch', {
          error: String(error),
          retryInMs: delay,
        });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * Where the main stream is: its position, the furthest change it applied (a Kafka record's offset
   * may be past its partition's position), whether a transaction is open in parts, and whether an
   * open window is passed.
   */
  private trackMain(part: ChangeBatch['part'], position: SourcePosition, changes: readonly Change[]): void {
    if (part) this.mainMidTransaction = !part.final;
    if (!(part && !part.final)) {
      for (const { stream, token } of position) {
        advance(this.mainPosition, stream, token);
        advance(this.mainApplied, stream, token);
      }
    }
    for (const [stream, token] of changePositions(changes)) advance(this.mainApplied, stream, token);
    if (this.window && !this.mainMidTransaction && reached(this.mainPosition, this.window.until))
      this.windowReached = true;
  }

  /**
   * The main stream passed what a backfill applied beyond it: the handed-over views take its changes
   * like the others. A window on row images first merges the backfill's images into the main ones
   * (they hold the columns the new views read), then deletes them; the record goes last, so a crash
   * in between merges again.
   */
  private async closeWindow(): Promise<void> {
    const window = this.window!;
    const token = this.lease.token;
    if (token === null) throw new FencedError(null);
    if (window.images)
      await mergeImages(this.options.redis, this.prefix, token, window.images, window.tables);
    await writeMeta(this.options.redis, this.prefix, token, {}, [BACKFILL_WINDOW_FIELD]);
    this.window = null;
    this.windowReached = false;
    this.log('info', 'the backfilled views follow the main stream alone now', { views: window.views });
  }

  /** The tables these views read (directly, or through the views they read). */
  private tablesOf(views: Iterable<string>): string[] {
    return [
      ...new Set(
        [...views].flatMap((v) => this.options.registry.byName.get(v)!.reads.map((r) => r.table.name)),
      ),
    ];
  }

  /** Start backfilling the views prepare() marked (backfill.ts). */
  private startBackfill(source: ChangeSource, maxChanges: number, wake: () => void): Backfill {
    const views = this.toBackfill;
    const tables = new Set<string>();
    for (const [table, scans] of this.flow.scans)
      if (scans.some((scan) => views.has(this.flow.owner.get(scan)!))) tables.add(table);
    const seeds = new Set<string>();
    for (const op of this.flow.order) {
      if (!(op instanceof ViewInput) || !views.has(this.flow.owner.get(op)!)) continue;
      const producer = this.flow.owner.get(op.inputs[0]!)!;
      if (!views.has(producer)) seeds.add(producer);
    }
    let backfill: Backfill;
    const backfillSource =
      tables.size > 0 ? source.backfill!([...tables], (p) => backfill.onProgress(p)) : null;
    backfill = new Backfill({
      views,
      tables: [...tables],
      seeds: [...seeds],
      source: backfillSource,
      maxQueuedChanges: maxChanges * 4,
      images: source.delivery === 'at-least-once' ? `backfill~${randomBytes(3).toString('hex')}~` : null,
    });
    backfill.start(wake);
    return backfill;
  }

  /** The backfilled views, building, with each table's progress (written with a step now and then). */
  private backfillStatuses(backfill: Backfill, force = false): { view: string; status: string }[] {
    const tables = backfill.progressToWrite(force);
    if (!tables) return [];
    return [...backfill.views.keys()].map((view) => {
      const before = this.statuses.get(view);
      const status: ViewStatus = {
        state: 'building',
        reason: before?.reason ?? 'backfilling',
        since: before?.since ?? backfill.started,
        backfill: { tables },
      };
      return { view, status: JSON.stringify(status) };
    });
  }

  /** One backfill step: its next batches through the backfilled views only, quietly. */
  private async applyBackfill(source: ChangeSource, backfill: Backfill, maxChanges: number): Promise<void> {
    const taken = backfill.take(maxChanges);
    if (taken) {
      const views = new Set(backfill.views.keys());
      const others = this.registry.views.map((v) => v.name).filter((v) => !views.has(v));
      const statuses = this.backfillStatuses(backfill);
      // A shape change the backfill reads (say, a numeric scale the records in Kafka cannot show)
      // stops the backfilled views it concerns, as it stopped them when the main stream read it.
      const effects =
        taken.schemaChanges.length > 0
          ? schemaChangeEffects(this.registry, taken.schemaChanges, {
              rebuildsFrom: source.rebuildsFrom ?? 'snapshot',
            })
          : null;
      const stopping = new Map(
        (effects?.stop ?? []).filter((s) => views.has(s.view)).map((s) => [s.view, s.reason]),
      );
      for (let attempt = 0; ; attempt++) {
        const outcome = await this.applyQuietly(
          source,
          taken.batches,
          { skip: new Set([...others, ...this.stoppedViews()]), quiet: views },
          statuses,
          [],
          backfill.images,
          stopping,
        );
        if (outcome === 'applied') break;
        this.store.invalidate();
        await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** attempt, 1000)));
      }
    }
    await backfill.ack();
  }

  /**
   * The backfill holds what the main stream applied: feed the views it read that stayed live (their
   * rows now), make the backfilled views live with a reset entry, and let the main stream feed them
   * from here — their scans skipping what the backfill applied beyond the main stream's position.
   */
  private async handOver(source: ChangeSource, backfill: Backfill): Promise<void> {
    const views = new Set(backfill.views.keys());
    const others = this.registry.views.map((v) => v.name).filter((v) => !views.has(v));
    const skip = new Set([...others, ...this.stoppedViews()]);
    for (const seedView of backfill.seeds) {
      const producer = this.flow.outputs.get(seedView)!;
      let cursor = '0';
      do {
        const [next, flat] = await this.options.redis.sendCommand<[string, string[]]>([
          'HSCAN',
          rowsKey(this.prefix, this.registry.byName.get(seedView)!.storage),
          cursor,
          'COUNT',
          '2000',
        ]);
        cursor = next;
        const deltas = [];
        for (let i = 0; i + 1 < flat.length; i += 2)
          deltas.push({
            key: flat[i]!,
            row: JSON.parse(flat[i + 1]!) as Record<string, never>,
            weight: 1 as const,
          });
        if (deltas.length > 0)
          await this.applyQuietly(source, [], {
            skip,
            quiet: views,
            seed: new Map<Operator, DeltaBatch>([[producer, { clear: false, deltas }]]),
          });
      } while (cursor !== '0');
    }
    const resets = new Map(
      [...views].map(
        (v) =>
          [
            v,
            this.swapping.has(v)
              ? 'the view changed: its new definition replaced the old one'
              : 'the view was built',
          ] as const,
      ),
    );
    // What the backfill applied beyond the main stream must not reach the views twice: a window,
    // stored with the step that makes them live (a restart inside it goes on with it).
    const images = source.delivery === 'at-least-once' ? backfill.images : null;
    const until = images ? backfill.applied : backfill.position;
    const window: BackfillWindow | null =
      images !== null || !reached(this.mainPosition, until)
        ? { views: [...views], until, images, tables: [...backfill.tables] }
        : null;
    const meta = metaKey(this.prefix);
    const writes: WriteOp[] = window
      ? [{ op: 'hset', key: meta, field: BACKFILL_WINDOW_FIELD, value: encodeWindow(window) }]
      : [];
    // A swap: the same step serves the new definitions (readers find them by fingerprint), and
    // records the old storages, deleted once it has landed (or at the next start).
    const retired = [...this.retired.keys()];
    for (const view of this.swapping.keys()) {
      const fingerprint = this.options.registry.byName.get(view)!.fingerprint;
      writes.push(
        { op: 'hset', key: meta, field: `fp:${view}`, value: fingerprint },
        { op: 'hset', key: meta, field: `def:${view}`, value: this.definitions.get(view)! },
        { op: 'hdel', key: meta, field: `next:${view}` },
      );
      const status = this.statuses.get(view);
      if (status?.state === 'stopped')
        writes.push({ op: 'hset', key: meta, field: `status:${view}`, value: JSON.stringify(status) });
    }
    if (retired.length > 0) {
      writes.push(
        {
          op: 'hset',
          key: meta,
          field: 'fingerprints',
          value: JSON.stringify(
            Object.fromEntries(this.options.registry.views.map((v) => [v.name, v.fingerprint])),
          ),
        },
        { op: 'hset', key: meta, field: RETIRED_FIELD, value: JSON.stringify(retired) },
      );
    }
    await this.applyQuietly(source, [], { skip, quiet: views, resets }, [], writes);
    this.backfill = null;
    this.window = window;
    this.windowReached = window !== null && reached(this.mainPosition, window.until);
    await backfill.close();
    this.log('info', 'backfill done: the views are live', {
      views: [...views],
      seconds: Math.round((Date.now() - backfill.started) / 100) / 10,
      main: Object.fromEntries(this.mainApplied),
      ...(window ? { windowUntil: Object.fromEntries(window.until) } : {}),
    });
    if (retired.length > 0) await this.dropRetired(retired);
  }

  /** After a swap landed: the dataflow keeps the config's views only, and the old storages go. */
  private async dropRetired(retired: readonly string[]): Promise<void> {
    const swapped = [...this.swapping.keys()];
    for (const storage of retired) this.statuses.delete(storage);
    this.swapping = new Map();
    this.useRetired([]);
    this.store.invalidate();
    const token = this.lease.token;
    if (token === null) throw new FencedError(null);
    await dropStorages(this.options.redis, this.prefix, token, new Set(retired));
    await writeMeta(this.options.redis, this.prefix, token, {}, [RETIRED_FIELD]);
    this.log('info', 'swapped: the changed views serve their new definitions; the old ones are deleted', {
      views: swapped,
      deleted: retired,
    });
  }

  /** A step that writes only the given views, without moving the main stream's position. */
  private async applyQuietly(
    source: ChangeSource,
    batches: ChangeBatch[],
    options: {
      skip: Set<string>;
      quiet: Set<string>;
      resets?: Map<string, string>;
      seed?: Map<Operator, DeltaBatch>;
    },
    statuses: { view: string; status: string }[] = [],
    extraWrites: WriteOp[] = [],
    imagesNamespace: string | null = null,
    stopping: ReadonlyMap<string, string> = new Map(),
  ): Promise<'applied' | 'conflict'> {
    const generation = this.store.generation;
    const received = batches.flatMap((b) => b.changes);
    // At-least-once sources: a backfill's changes resolved against its own row images.
    const resolved =
      imagesNamespace !== null
        ? resolveWithImages(this.registry, received, await this.readImages(received, imagesNamespace))
        : null;
    const changes = resolved?.changes ?? received;
    const result = await runBatch(this.flow, changes, this.store, {
      ...options,
      skip: new Set([...options.skip, ...stopping.keys()]),
    });
    const deferred = this.deferFanouts(result);
    const writes = this.store.takeWrites();
    for (const w of extraWrites) writes.add(w);
    const stop = this.stopsOf(result, stopping);
    const group: ChangeBatch[] =
      batches.length > 0 ? batches : [{ kind: 'transaction', changes: [], position: [] }];
    const outcome = await this.apply(source, {
      group,
      changes,
      result,
      writes,
      deadLetters: result.rejected.map((r) => ({
        reason: r.reason,
        payload: JSON.stringify({ view: r.view, change: r.change }),
      })),
      position: [],
      images: resolved && imagesNamespace !== null ? inNamespace(resolved.writes, imagesNamespace) : null,
      skipped: resolved?.skipped ?? 0,
      stop,
      resets: options.resets ?? new Map(),
      generation,
      backfill: true,
      statuses,
      deferred,
    });
    if (outcome === 'applied' && deferred) await this.finishFanouts(source);
    return outcome;
  }

  /** Keep the in-process view statuses in step with what the write step stored. */
  private afterStep(
    control: { readonly statuses: readonly { view: string; status: string }[] },
    planned: PlannedGroup,
  ): void {
    for (const { view, status } of control.statuses) {
      const parsed = JSON.parse(status) as ViewStatus;
      this.statuses.set(view, parsed);
      if (parsed.state === 'stopped') {
        this.log('error', 'view stopped', { view, reason: parsed.reason });
        this.emit(ENGINE_EVENTS.VIEW_STOPPED, { view, reason: parsed.reason });
      }
    }
    if (planned.group.some((b) => b.live) && this.state !== 'live') {
      this.log('info', 'views are live (initial load done)');
      this.emit(ENGINE_EVENTS.SNAPSHOT_DONE, {});
    }
    if (this.state === 'retrying' || (this.state === 'building' && planned.group.some((b) => b.live)))
      this.setState('live', null);
  }
}

interface PlannedGroup {
  readonly group: ChangeBatch[];
  readonly changes: Change[];
  readonly result: RunResult;
  readonly writes: StepWrites;
  readonly deadLetters: DeadLetter[];
  readonly position: SourcePosition;
  readonly images: ImageWrites | null;
  readonly skipped: number;
  /** Views this step stops, with the reason. */
  readonly stop: Map<string, string>;
  /** Views whose history starts over with this step. */
  readonly resets: Map<string, string>;
  /** The state cache's generation it was planned under. */
  readonly generation: number;
  /** A backfill's step (it does not move the main stream's position). */
  readonly backfill?: boolean;
  /** Statuses to store with the step (a backfill's progress). */
  readonly statuses?: { view: string; status: string }[];
  /** It stores join fan-outs to finish before anything else is planned (plan/fanout.ts). */
  readonly deferred?: boolean;
  /** A chunk of a join fan-out. */
  readonly fanoutChunk?: boolean;
}

/** Positions of several batches: the latest token per stream. */
function mergePositions(a: SourcePosition, b: SourcePosition): SourcePosition {
  const merged = new Map(a.map((p) => [p.stream, p.token]));
  for (const p of b) merged.set(p.stream, p.token);
  return [...merged].map(([stream, token]) => ({ stream, token }));
}

/**
 * Everything waiting, up to maxChanges (at least one batch). A part of a large transaction is a
 * step of its own, and so is a batch carrying schema changes; with `sideOf`, a group holds batches
 * of one side only.
 */
function takeGroup(
  queue: ChangeBatch[],
  maxChanges: number,
  sideOf?: (batch: ChangeBatch) => boolean,
): ChangeBatch[] {
  const alone = (b: ChangeBatch): boolean => b.part !== undefined || (b.schemaChanges?.length ?? 0) > 0;
  const group: ChangeBatch[] = [queue.shift()!];
  if (alone(group[0]!)) return group;
  let n = group[0]!.changes.length;
  const side = sideOf?.(group[0]!);
  while (
    queue.length > 0 &&
    !alone(queue[0]!) &&
    n + queue[0]!.changes.length <= maxChanges &&
    sideOf?.(queue[0]!) === side
  ) {
    const next = queue.shift()!;
    n += next.changes.length;
    group.push(next);
  }
  return group;
}
