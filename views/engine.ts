/**
 * The loop that keeps the views: source → plan → one atomic Redis step → acknowledge.
 *
 *            ┌──────────── read ahead (bounded) ────────────┐
 *   source ──┤ batch, batch, batch …                        ├──▶ take everything waiting (group commit)
 *            └──────────────────────────────────────────────┘        │
 *                                                                    ▼
 *                                     planBatch (pure) → applyBatch (one Lua call: views, changelog,
 *                                     dead letters, checkpoint) → source.ack(position) → events
 *
 * While one group is being applied, the next one accumulates, so a busy source gets large atomic
 * steps (throughput) and a quiet one gets a step per transaction (latency).
 *
 * Starting: the stored view fingerprints must match the config, and the source must be able to
 * resume from the stored checkpoint; otherwise the deployment's keys are wiped and the views are
 * rebuilt from a fresh snapshot. Failing: Redis errors retry the same group (nothing was applied:
 * the script is atomic); source errors restart the pipeline from the stored checkpoint; errors in
 * the config or the source schema stop the engine with their message.
 */
import { EventEmitter } from 'node:events';
import type { Change, ChangeBatch, ChangeSource, SourcePosition } from '../ingest/change.ts';
import { ServiceError } from '../ingest/errors.ts';
import { applyBatch, type DeadLetter } from './store/apply-batch.ts';
import { checkpointKey, imagesKey, keyPrefix, metaKey } from './store/keys.ts';
import { deleteByPattern, type RedisClient } from './store/redis.ts';
import { planBatch, type BatchPlan } from './plan/plan-batch.ts';
import { imageKeysOf, resolveWithImages, type ImageWrites, type StoredImages } from './plan/row-images.ts';
import { STATE_LAYOUT_VERSION, type Registry } from './registry.ts';

/** A source the engine can ask whether the stored checkpoint is still reachable. */
export interface ResumableSource extends ChangeSource {
  canResume?(position: SourcePosition | null): Promise<boolean>;
}

export interface EngineOptions {
  readonly registry: Registry;
  readonly redis: RedisClient;
  /** A fresh source per (re)start of the pipeline. */
  readonly createSource: () => ResumableSource;
  /** Changes per atomic step at most (bounds script time in Redis). */
  readonly maxBatchChanges?: number;
  readonly changelogMaxLength?: number;
  readonly log?: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export const ENGINE_EVENTS = {
  /** A group of batches landed in Redis: BatchAppliedEvent. */
  BATCH_APPLIED: 'engine.batch_applied',
  /** The initial snapshot finished and the views are live. */
  SNAPSHOT_DONE: 'engine.snapshot_done',
  /** The views were wiped and are being rebuilt: { reason }. */
  REBUILD: 'engine.rebuild',
  /** The pipeline failed and will restart: { error }. */
  RESTART: 'engine.restart',
} as const;

export interface BatchAppliedEvent {
  readonly transactions: number;
  readonly changes: number;
  readonly snapshot: boolean;
  readonly duplicate: boolean;
  readonly changelogEntries: number;
  readonly deadLetters: number;
  /** Changes dropped as already applied to their row (at-least-once sources). */
  readonly skipped: number;
  readonly views: readonly string[];
  readonly position: SourcePosition;
  /** Source commit time of the newest transaction in the group (µs since epoch). */
  readonly commitTimeUs: number | undefined;
  readonly applyMs: number;
  /** Logical messages carried by the group's transactions. */
  readonly messages: readonly { prefix: string; content: string }[];
}

const FATAL_CODES = new Set(['CONFIG_INVALID', 'SOURCE_SCHEMA']);

export class Engine extends EventEmitter {
  readonly prefix: string;
  private readonly options: EngineOptions;
  private source: ResumableSource | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  /** True once views are live (snapshot done, or resumed). */
  ready = false;

  constructor(options: EngineOptions) {
    super();
    this.options = options;
    this.prefix = keyPrefix(options.registry.name);
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
  }

  private async supervise(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        await this.runPipeline();
        failures = 0;
        if (this.stopping) return;
      } catch (error) {
        if (this.stopping) return;
        if (error instanceof ServiceError && FATAL_CODES.has(error.code)) throw error;
        failures++;
        const delay = Math.min(100 * 2 ** failures, 10_000);
        this.options.log?.('error', 'pipeline failed; restarting from the stored checkpoint', { error: String(error), retryInMs: delay });
        this.emit(ENGINE_EVENTS.RESTART, { error });
        await new Promise((r) => setTimeout(r, delay));
      } finally {
        await this.source?.close().catch(() => undefined);
        this.source = null;
        this.ready = false;
      }
    }
  }

  private async runPipeline(): Promise<void> {
    const source = (this.source = this.options.createSource());
    const checkpoint = await this.prepare(source);
    this.ready = checkpoint !== null;
    const queue: ChangeBatch[] = [];
    let queuedChanges = 0;
    // Wake-ups between the reader and the applier (held in an object: TS cannot see closure writes).
    const waiting: { wake: (() => void) | null; drained: (() => void) | null } = { wake: null, drained: null };
    let finished = false;
    let failure: unknown = null;
    const maxChanges = this.options.maxBatchChanges ?? 5000;
    const signal = (): void => {
      waiting.wake?.();
      waiting.wake = null;
    };

    const reader = (async () => {
      try {
        for await (const batch of source.start(checkpoint)) {
          queue.push(batch);
          queuedChanges += batch.changes.length;
          signal();
          while (queuedChanges > maxChanges * 4 && !this.stopping) await new Promise<void>((r) => (waiting.drained = r));
          if (this.stopping) break;
        }
      } catch (error) {
        failure = error;
      } finally {
        finished = true;
        signal();
      }
    })();

    let inFlight: Promise<void> = Promise.resolve();
    while (!this.stopping) {
      if (queue.length === 0) {
        if (finished) break;
        await new Promise<void>((r) => (waiting.wake = r));
        continue;
      }
      const group = takeGroup(queue, maxChanges);
      queuedChanges -= group.reduce((n, b) => n + b.changes.length, 0);
      waiting.drained?.();
      waiting.drained = null;
      // Plan this group while the previous one is still being applied (Node and Redis work in
      // parallel); apply and acknowledge strictly in order.
      if (source.delivery === 'at-least-once') {
        // Row images must reflect the previous batch before this one is resolved against them.
        await inFlight;
        inFlight = this.applyAtLeastOnce(source, group);
        continue;
      }
      const planned = this.plan(group, null);
      await inFlight;
      inFlight = this.apply(source, planned).then(() => undefined);
    }
    await inFlight;
    waiting.drained?.();
    await reader;
    if (failure && !this.stopping) throw failure;
  }

  /** Decide between resuming and rebuilding; returns the checkpoint to resume from, or null. */
  private async prepare(source: ResumableSource): Promise<SourcePosition | null> {
    const { redis, registry } = this.options;
    const fingerprints = JSON.stringify(Object.fromEntries(registry.views.map((v) => [v.name, v.fingerprint])));
    const meta = await redis.sendCommand<string[]>(['HGETALL', metaKey(this.prefix)]);
    const stored = toRecord(meta);
    const checkpoint = toPosition(await redis.sendCommand<string[]>(['HGETALL', checkpointKey(this.prefix)]));
    let reason: string | null = null;
    if (checkpoint === null) reason = stored['fingerprints'] ? 'the initial snapshot did not finish' : 'first start';
    else if (stored['fingerprints'] !== fingerprints) reason = 'the view definitions changed';
    else if (source.canResume && !(await source.canResume(checkpoint))) reason = 'the source cannot resume from the stored position';
    if (reason === null) {
      this.options.log?.('info', 'resuming views from the stored checkpoint', { checkpoint });
      return checkpoint;
    }
    this.options.log?.('info', 'building views from a fresh snapshot', { reason });
    this.emit(ENGINE_EVENTS.REBUILD, { reason });
    await deleteByPattern(redis, `${this.prefix}:*`);
    await redis.sendCommand(['HSET', metaKey(this.prefix), 'layout', String(STATE_LAYOUT_VERSION), 'fingerprints', fingerprints]);
    return null;
  }

  /** Plan a group; with stored row images (at-least-once sources), resolve it against them first. */
  private plan(group: ChangeBatch[], stored: StoredImages | null): PlannedGroup {
    const received = group.flatMap((b) => b.changes);
    const resolved = stored ? resolveWithImages(this.options.registry, received, stored) : null;
    const plan = planBatch(this.options.registry, resolved?.changes ?? received);
    const deadLetters: DeadLetter[] = [
      ...group.flatMap((b) => b.deadLetters ?? []),
      ...plan.rejected.map((r) => ({ reason: r.reason, payload: JSON.stringify({ view: r.view, change: r.change }) })),
    ];
    let position: SourcePosition = [];
    for (const b of group) if (b.position.length > 0) position = mergePositions(position, b.position);
    return { group, changes: received, plan, deadLetters, position, images: resolved?.writes ?? null, skipped: resolved?.skipped ?? 0 };
  }

  /** At-least-once: read the row images the group touches, resolve, apply; re-plan if an image moved meanwhile. */
  private async applyAtLeastOnce(source: ResumableSource, group: ChangeBatch[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.readImages(group);
      const result = await this.apply(source, this.plan(group, stored));
      if (result !== 'conflict') return;
      this.options.log?.('warn', 'a row image changed while the batch was planned (another writer?); planning it again', { attempt });
      await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** attempt, 1000)));
    }
  }

  private async readImages(group: ChangeBatch[]): Promise<StoredImages> {
    const keys = imageKeysOf(this.options.registry, group.flatMap((b) => b.changes));
    const stored = new Map<string, Map<string, string | null>>();
    await Promise.all(
      [...keys].map(async ([table, set]) => {
        const list = [...set];
        const values = await this.options.redis.sendCommand<(string | null)[]>(['HMGET', imagesKey(this.prefix, table), ...list]);
        stored.set(table, new Map(list.map((k, i) => [k, values[i] ?? null])));
      }),
    );
    return stored;
  }

  private async apply(source: ResumableSource, planned: PlannedGroup): Promise<'applied' | 'conflict'> {
    const { group, changes, plan, deadLetters, position, images } = planned;
    const { redis } = this.options;
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await applyBatch(
          redis,
          this.prefix,
          plan,
          position,
          deadLetters,
          { changelogMaxLength: this.options.changelogMaxLength ?? 10_000 },
          images,
        );
        if (result.status === 'conflict') return 'conflict';
        if (position.length > 0) await source.ack(position);
        const snapshot = group.some((b) => b.kind === 'snapshot');
        const last = group.findLast((b) => b.commitTimeUs !== undefined);
        const event: BatchAppliedEvent = {
          transactions: group.filter((b) => b.kind === 'transaction').length,
          changes: changes.length,
          snapshot,
          duplicate: result.status === 'duplicate',
          changelogEntries: result.status === 'applied' ? result.changelogEntries : 0,
          deadLetters: deadLetters.length,
          skipped: planned.skipped,
          views: plan.views.map((v) => v.view.name),
          position,
          commitTimeUs: last?.commitTimeUs,
          applyMs: performance.now() - started,
          messages: group.flatMap((b) => b.messages ?? []),
        };
        this.emit(ENGINE_EVENTS.BATCH_APPLIED, event);
        if (group.some((b) => b.live) && !this.ready) {
          this.ready = true;
          this.options.log?.('info', 'views are live (initial load done)');
          this.emit(ENGINE_EVENTS.SNAPSHOT_DONE, {});
        }
        return 'applied';
      } catch (error) {
        if (this.stopping || !(error instanceof ServiceError && error.retriable)) throw error;
        const delay = Math.min(50 * 2 ** attempt, 5000);
        this.options.log?.('warn', 'Redis apply failed; retrying the same batch', { error: String(error), retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

interface PlannedGroup {
  readonly group: ChangeBatch[];
  readonly changes: Change[];
  readonly plan: BatchPlan;
  readonly deadLetters: DeadLetter[];
  readonly position: SourcePosition;
  readonly images: ImageWrites | null;
  readonly skipped: number;
}

/** Positions of several batches: the latest token per stream. */
function mergePositions(a: SourcePosition, b: SourcePosition): SourcePosition {
  const merged = new Map(a.map((p) => [p.stream, p.token]));
  for (const p of b) merged.set(p.stream, p.token);
  return [...merged].map(([stream, token]) => ({ stream, token }));
}

/** Everything waiting, up to maxChanges (at least one batch). */
function takeGroup(queue: ChangeBatch[], maxChanges: number): ChangeBatch[] {
  const group: ChangeBatch[] = [queue.shift()!];
  let n = group[0]!.changes.length;
  while (queue.length > 0 && n + queue[0]!.changes.length <= maxChanges) {
    const next = queue.shift()!;
    n += next.changes.length;
    group.push(next);
  }
  return group;
}

function toRecord(flat: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]!] = flat[i + 1]!;
  return record;
}

function toPosition(flat: readonly string[]): SourcePosition | null {
  const entries = Object.entries(toRecord(flat)).map(([stream, token]) => ({ stream, token }));
  return entries.length > 0 ? entries : null;
}
