/**
 * Building some views again while every other view stays live (new or changed definitions, views
 * that had stopped, `cdc-views rebuild`): the engine's second, short-lived input.
 *
 *   main source  ──────── M (what the live views hold) ─────────────────────────────────────────▶
 *   backfill     the views' tables up to a point X ─▶ every change after X ─▶ … B ≥ M: hand over
 *
 * The backfill source reads the tables the views scan — PostgreSQL: a temporary slot's exported
 * snapshot at X, then that slot's stream; Kafka: the tables' topics again from their beginning —
 * and its steps write only those views, quietly (they are building). Main steps skip them
 * meanwhile. Once the backfill holds every change the main stream applied (B ≥ M on every stream
 * it reads, neither in the middle of a transaction), the engine hands over in one step: views
 * they read that stayed live are fed in whole (their rows at M), the views go live with a reset
 * entry, and from then on the main stream feeds them. Until the main stream has passed what the
 * backfill applied beyond M (`until`), it must not apply those changes to them twice:
 *
 *   scans   (PostgreSQL, exactly ordered) a main transaction up to `until` skips their scans
 *   images  (Kafka, at least once) their changes are resolved against the backfill's own row
 *           images, which skip what it applied; at the end those images replace the main ones
 */
import { compareTokens, type Change, type ChangeBatch, type ChangeSource, type SchemaChange } from '../ingest/change.ts';
import type { BackfillProgress, ViewStatus } from './store/state.ts';

/** Per stream, the furthest token. */
export type Positions = Map<string, string>;

export class Backfill {
  /** The views being built, and why. */
  readonly views: ReadonlyMap<string, string>;
  /** Tables their scans read (what the backfill source reads). */
  readonly tables: readonly string[];
  /** Views they read that stay live: fed in whole at the hand-over. */
  readonly seeds: readonly string[];
  readonly source: ChangeSource | null;
  private readonly queue: ChangeBatch[] = [];
  private queuedChanges = 0;
  private readonly maxQueued: number;
  private readonly progress = new Map<string, BackfillProgress>();
  private progressWritten = 0;
  private progressChanged = false;
  private drained: (() => void) | null = null;
  private reader: Promise<void> | null = null;
  private closed = false;
  /** Why the backfill source failed (the pipeline restarts, and the backfill with it). */
  failure: unknown = null;
  /** The snapshot (or the replay up to where the topics ended when it began) is in. */
  snapshotDone: boolean;
  /** Per stream, what the backfill holds (positions of the batches taken). */
  readonly position: Positions = new Map();
  /** Per stream, the furthest change taken (Kafka offsets: a batch's position may lag its records). */
  readonly applied: Positions = new Map();
  /** Inside a transaction applied in parts. */
  midTransaction = false;
  /** At-least-once sources: the namespace of its own row images (`img:<namespace><table>`). */
  readonly images: string | null;
  readonly started = Date.now();

  constructor(options: {
    views: ReadonlyMap<string, string>;
    tables: readonly string[];
    seeds: readonly string[];
    source: ChangeSource | null;
    maxQueuedChanges: number;
    images?: string | null;
  }) {
    this.images = options.images ?? null;
    this.views = options.views;
    this.tables = options.tables;
    this.seeds = options.seeds;
    this.source = options.source;
    this.maxQueued = options.maxQueuedChanges;
    // Views that read only live views have nothing to read: they are fed at the hand-over.
    this.snapshotDone = options.source === null;
  }

  /** Start reading the backfill source; `wake` is called whenever there is something to take. */
  start(wake: () => void): void {
    const source = this.source;
    if (!source) return;
    this.reader = (async () => {
      try {
        for await (const batch of source.start(null)) {
          this.queue.push(batch);
          this.queuedChanges += batch.changes.length;
          wake();
          while (this.queuedChanges > this.maxQueued && !this.closed) await new Promise<void>((r) => (this.drained = r));
          if (this.closed) break;
        }
      } catch (error) {
        if (!this.closed) this.failure = error;
      } finally {
        wake();
      }
    })();
  }

  onProgress(p: BackfillProgress): void {
    this.progress.set(p.table, { table: p.table, rows: p.rows, estimatedRows: p.estimatedRows, done: p.done });
    this.progressChanged = true;
  }

  /** Each table's progress, when it changed and was last written over a second ago (or `force`). */
  progressToWrite(force = false): BackfillProgress[] | null {
    if (!this.progressChanged || (!force && Date.now() - this.progressWritten < 1000)) return null;
    this.progressChanged = false;
    this.progressWritten = Date.now();
    return this.tables.map((table) => this.progress.get(table) ?? { table, rows: 0, estimatedRows: 0, done: false });
  }

  /**
   * Whether the views can go live now: the backfill holds every change the main stream applied
   * (`mainApplied`: per stream, the furthest change the main stream applied).
   */
  canHandOver(mainApplied: ReadonlyMap<string, string>, mainMidTransaction: boolean): boolean {
    if (!this.snapshotDone || this.midTransaction || mainMidTransaction) return false;
    if (this.source === null) return true;
    for (const [stream, token] of mainApplied) {
      if (!(this.source.readsStream?.(stream) ?? true)) continue;
      const held = this.position.get(stream);
      if (held === undefined || compareTokens(held, token) < 0) return false;
    }
    return true;
  }

  hasQueued(): boolean {
    return this.queue.length > 0;
  }

  /**
   * The next batches to apply (one part of a large transaction alone; else whole transactions
   * and snapshot chunks up to maxChanges), as plain batches: no position (the checkpoint is the
   * main stream's), no part (a crash restarts the backfill, never replays a part of it), not live,
   * no dead letters (the main stream parks those); shape changes come apart (they may stop the
   * backfilled views, as they stopped them before). Batches without changes only move the position.
   */
  take(maxChanges: number): { batches: ChangeBatch[]; changes: number; schemaChanges: SchemaChange[] } | null {
    const batches: ChangeBatch[] = [];
    const schemaChanges: SchemaChange[] = [];
    let changes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (next.part && batches.length > 0) break;
      if (batches.length > 0 && changes + next.changes.length > maxChanges) break;
      this.queue.shift();
      this.queuedChanges -= next.changes.length;
      changes += next.changes.length;
      if (next.changes.length > 0) batches.push({ kind: next.kind, changes: next.changes, position: [] });
      schemaChanges.push(...(next.schemaChanges ?? []));
      if (next.live) this.snapshotDone = true;
      if (next.part) this.midTransaction = !next.part.final;
      for (const { stream, token } of next.position) advance(this.position, stream, token);
      for (const [stream, token] of changePositions(next.changes)) advance(this.applied, stream, token);
      this.lastPosition = next.position.length > 0 ? next.position : this.lastPosition;
      if (next.part) break;
    }
    this.drained?.();
    this.drained = null;
    return batches.length > 0 || schemaChanges.length > 0 ? { batches, changes, schemaChanges } : null;
  }

  private lastPosition: ChangeBatch['position'] | null = null;

  /** Acknowledge what was applied (a temporary slot then sends keepalives that move `position`). */
  async ack(): Promise<void> {
    if (this.source && this.lastPosition !== null) await this.source.ack(this.lastPosition).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.drained?.();
    await this.source?.close().catch(() => undefined);
    await this.reader;
  }
}

/**
 * After a hand-over, until the main stream reaches `until`: the views handed over, and how they
 * avoid what the backfill applied (stored in the meta hash, so a restart goes on with it).
 */
export interface BackfillWindow {
  readonly views: readonly string[];
  readonly until: Positions;
  /** Row images' namespace (at-least-once sources), else null: the views' scans skip covered transactions. */
  readonly images: string | null;
  readonly tables: readonly string[];
}

export function encodeWindow(window: BackfillWindow): string {
  return JSON.stringify({ ...window, until: Object.fromEntries(window.until) });
}

export function decodeWindow(text: string): BackfillWindow {
  const parsed = JSON.parse(text) as Omit<BackfillWindow, 'until'> & { until: Record<string, string> };
  return { ...parsed, until: new Map(Object.entries(parsed.until)) };
}

/** Move a stream's token forward (never back). */
export function advance(positions: Positions, stream: string, token: string): void {
  const held = positions.get(stream);
  if (held === undefined || compareTokens(token, held) > 0) positions.set(stream, token);
}

/** Where changes sit in their streams: Kafka records carry their partition and offset. */
export function changePositions(changes: readonly Change[]): Positions {
  const out: Positions = new Map();
  for (const change of changes) {
    const k = change.source.kafka;
    if (k) advance(out, `kafka:${k.topic}:${k.partition}`, k.offset.padStart(20, '0'));
  }
  return out;
}

/** Whether every stream of `until` is reached by `positions`. */
export function reached(positions: ReadonlyMap<string, string>, until: ReadonlyMap<string, string>): boolean {
  for (const [stream, token] of until) {
    const held = positions.get(stream);
    if (held === undefined || compareTokens(held, token) < 0) return false;
  }
  return true;
}

/**
 * Whether a main-stream batch is one the backfill already applied (its streams up to `until`):
 * a whole transaction by its position, a part by its probe (PostgreSQL: its commit LSN, strictly
 * before; so every part of one transaction is judged alike).
 */
export function coveredBy(batch: ChangeBatch, until: ReadonlyMap<string, string>): boolean {
  const marks = batch.part ? batch.part.probe : batch.position;
  for (const { stream, token } of marks) {
    const limit = until.get(stream);
    if (limit === undefined) continue;
    const c = compareTokens(token, limit);
    if (batch.part ? c >= 0 : c > 0) return false;
  }
  return true;
}

/** One table's progress after `seconds`: rows (of ~estimate, percent), rate, time left. */
export function describeProgress(p: BackfillProgress, seconds: number): string {
  if (p.done) return `${p.table}: ${p.rows} rows read`;
  const rate = p.rows / Math.max(0.001, seconds);
  const percent = p.estimatedRows > 0 ? Math.min(99, Math.floor((100 * p.rows) / p.estimatedRows)) : null;
  const eta = percent !== null && rate > 0 ? Math.max(0, Math.round((p.estimatedRows - p.rows) / rate)) : null;
  return `${p.table}: ${p.rows}${p.estimatedRows > 0 ? ` of ~${p.estimatedRows}` : ''} rows${percent !== null ? ` (${percent} %)` : ''}, ${Math.round(rate)} rows/s${eta !== null ? `, ~${eta} s left` : ''}`;
}

/** A backfilling view's progress, one line per table. */
export function describeBackfill(status: ViewStatus, now = Date.now()): string[] {
  return (status.backfill?.tables ?? []).map((t) => describeProgress(t, (now - status.since) / 1000));
}
