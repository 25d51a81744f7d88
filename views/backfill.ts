/**
 * Building some views again while every other view stays live (new or changed definitions, views
 * that had stopped, `cdc-views rebuild`): the engine's second, short-lived input.
 *
 *   main source  ──────── M (the last transaction the live views hold) ──────────────────────────▶
 *   backfill     snapshot of the views' tables at X ─▶ every transaction after X ─▶ … B ≥ M: hand over
 *
 * The backfill source (a temporary slot on PostgreSQL) reads the tables the views scan at a
 * consistent point X, then streams on from X; its steps write only those views, quietly (they are
 * building). Main steps skip them meanwhile. Once the backfill holds every transaction the main
 * stream applied (B ≥ M, neither in the middle of a transaction), the engine hands over in one
 * step: views they read that stayed live are fed in whole (their rows at M), the views go live
 * with a reset entry, and from then on the main stream feeds them — except the scans of
 * transactions up to B, which the backfill already applied (`threshold`).
 */
import { compareTokens, type ChangeBatch, type ChangeSource, type SourcePosition } from '../ingest/change.ts';
import type { BackfillProgress, ViewStatus } from './store/state.ts';

export class Backfill {
  /** The views being built, and why. */
  readonly views: ReadonlyMap<string, string>;
  /** Tables their scans read (what the backfill source snapshots and streams). */
  readonly tables: readonly string[];
  /** Views they read that stay live: fed in whole at the hand-over. */
  readonly seeds: readonly string[];
  private readonly source: ChangeSource | null;
  private readonly queue: ChangeBatch[] = [];
  private queuedChanges = 0;
  private readonly maxQueued: number;
  private readonly progress = new Map<string, BackfillProgress>();
  private progressWritten = 0;
  private progressChanged = false;
  private drained: (() => void) | null = null;
  private lastPosition: SourcePosition | null = null;
  private reader: Promise<void> | null = null;
  private closed = false;
  /** Why the backfill source failed (the pipeline restarts, and the backfill with it). */
  failure: unknown = null;
  /** The snapshot is in: the views hold every transaction before X. */
  snapshotDone: boolean;
  /** The last position the backfill holds (X, then each transaction's end). */
  position: string | null = null;
  /** Inside a transaction applied in parts. */
  midTransaction = false;
  readonly started = Date.now();

  constructor(options: { views: ReadonlyMap<string, string>; tables: readonly string[]; seeds: readonly string[]; source: ChangeSource | null; maxQueuedChanges: number }) {
    this.views = options.views;
    this.tables = options.tables;
    this.seeds = options.seeds;
    this.source = options.source;
    this.maxQueued = options.maxQueuedChanges;
    // Views that read only live views have nothing to snapshot: they are fed at the hand-over.
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

  /** Whether the views can go live now: the backfill holds every transaction the main stream applied. */
  canHandOver(main: string | null, mainMidTransaction: boolean): boolean {
    if (!this.snapshotDone || this.midTransaction || mainMidTransaction) return false;
    if (this.source === null || main === null) return true;
    return this.position !== null && compareTokens(this.position, main) >= 0;
  }

  hasQueued(): boolean {
    return this.queue.length > 0;
  }

  /**
   * The next batches to apply (one part of a large transaction alone; else whole transactions
   * and snapshot chunks up to maxChanges), as plain batches: no position (the checkpoint is the
   * main stream's), no part (a crash restarts the backfill, never replays a part of it), not live.
   * Batches without changes only move the position.
   */
  take(maxChanges: number): { batches: ChangeBatch[]; changes: number } | null {
    const batches: ChangeBatch[] = [];
    let changes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (next.part && batches.length > 0) break;
      if (batches.length > 0 && changes + next.changes.length > maxChanges) break;
      this.queue.shift();
      this.queuedChanges -= next.changes.length;
      changes += next.changes.length;
      if (next.changes.length > 0) batches.push({ kind: next.kind, changes: next.changes, position: [] });
      if (next.live) this.snapshotDone = true;
      if (next.part) this.midTransaction = !next.part.final;
      const token = next.position[0]?.token;
      if (token !== undefined && (this.position === null || compareTokens(token, this.position) > 0)) {
        this.position = token;
        this.lastPosition = next.position;
      }
      if (next.part) break;
    }
    this.drained?.();
    this.drained = null;
    return batches.length > 0 ? { batches, changes } : null;
  }

  /** Acknowledge what was applied (the temporary slot then sends keepalives that move `position`). */
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

/** Whether a main-stream batch is one the backfill already applied to its tables (up to `threshold`). */
export function coveredBy(batch: ChangeBatch, threshold: string): boolean {
  // A part is judged by its commit LSN, so every part of one transaction is judged alike.
  if (batch.part) return compareTokens(batch.part.txn, threshold) < 0;
  const token = batch.position[0]?.token;
  return token === undefined || compareTokens(token, threshold) <= 0;
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
