/**
 * Debezium records → ChangeBatches, whole source transactions at a time, in a safe order for the
 * Kafka positions. Pure (no Kafka client): the Kafka source feeds it decoded records and applies
 * what it releases.
 *
 *   data topics  ──record──▶ unit of its transaction (transaction block) or a unit of its own
 *   <prefix>.transaction ──BEGIN/END──▶ the transaction's unit; END says how many events it has
 *
 *   Every unit also sits in a FIFO per Kafka partition it has records in. A unit is released when
 *   it is complete (END seen and all its events arrived; at once for a unit of its own) and it is
 *   at the head of every FIFO it sits in. So:
 *     - a transaction spanning tables (topics) lands in one atomic step,
 *     - units leave in partition order, so a batch's position (the highest offset it holds per
 *       partition) never passes a record that is not yet applied,
 *     - transactions leave in commit order (their ENDs' order on the transaction topic).
 *
 * Without transaction metadata every record is a unit of its own, and the same code releases
 * each as soon as it arrives.
 */
import type { Change, ChangeBatch, SourceDeadLetter } from '../change.ts';
import type { DecodedRecord } from './debezium-decoder.ts';

/** A record as the assembler sees it: where it came from, and what it decoded to (or why it did not). */
export interface AssemblerInput {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly record: DecodedRecord | { readonly kind: 'dead-letter'; readonly letter: SourceDeadLetter };
}

interface Unit {
  readonly txKey: string | null;
  readonly changes: Change[];
  readonly deadLetters: SourceDeadLetter[];
  /** Highest offset per stream ('kafka:<topic>:<partition>'). */
  readonly offsets: Map<string, bigint>;
  /** Events of the subscribed tables the END announced; null until END is seen (or for single units). */
  expected: number | null;
  ended: boolean;
  snapshot: boolean;
  released: boolean;
}

export function streamOf(topic: string, partition: number): string {
  return `kafka:${topic}:${partition}`;
}

/** PostgreSQL's transaction ids are '<xid>:<lsn of the event>'; the xid names the transaction. */
export function transactionKey(id: string): string {
  return /^\d+:\d+$/.test(id) ? id.slice(0, id.indexOf(':')) : id;
}

/** A Kafka offset as a checkpoint token: 20 zero-padded digits, so string order is offset order. */
export function offsetToken(offset: bigint): string {
  return offset.toString().padStart(20, '0');
}

export interface AssemblerOptions {
  /** Tables whose topics are consumed (Change.table names); END counts only these. */
  readonly tables: ReadonlySet<string>;
  /** The per-row order token of a change (see Change.order). */
  readonly orderOf: (change: Change) => string | undefined;
  readonly onForcedRelease?: (txKey: string) => void;
}

export class TransactionAssembler {
  private readonly options: AssemblerOptions;
  private readonly pending = new Map<string, Unit>();
  private readonly fifos = new Map<string, Unit[]>();
  /** The last data record per stream: a tombstone right after a delete of its key belongs to it. */
  private readonly lastRecord = new Map<string, { key: string; op: string; unit: Unit }>();

  constructor(options: AssemblerOptions) {
    this.options = options;
  }

  /** Units not yet released (for backpressure and tests). */
  get size(): number {
    let n = 0;
    for (const fifo of this.fifos.values()) n += fifo.length;
    return n;
  }

  add({ topic, partition, offset, record }: AssemblerInput): void {
    const stream = streamOf(topic, partition);
    switch (record.kind) {
      case 'change': {
        const change = { ...record.change, ...orderField(this.options.orderOf(record.change)) };
        const unit = record.transaction ? this.transactionUnit(transactionKey(record.transaction.id)) : this.singleUnit();
        unit.snapshot ||= change.op === 'r';
        unit.changes.push(change);
        this.place(unit, stream, offset);
        this.lastRecord.set(stream, { key: JSON.stringify(change.key), op: change.op, unit });
        return;
      }
      case 'tombstone': {
        const last = this.lastRecord.get(stream);
        const key = JSON.stringify(record.key);
        if (last && last.op === 'd' && last.key === key) {
          // The usual tombstone after a delete: nothing to do but to count its offset with the delete.
          this.place(last.unit.released ? this.singleUnit() : last.unit, stream, offset);
          return;
        }
        // A lone tombstone (e.g. delete.tombstone.handling.mode=tombstone): a delete by key.
        const unit = this.singleUnit();
        if (record.key) unit.changes.push(tombstoneChange(record.table, record.key));
        this.place(unit, stream, offset);
        return;
      }
      case 'transaction': {
        const unit = this.transactionUnit(transactionKey(record.id));
        if (record.status === 'END') {
          unit.ended = true;
          unit.expected = record.dataCollections
            ? record.dataCollections.filter((c) => this.options.tables.has(c.table)).reduce((n, c) => n + c.eventCount, 0)
            : (record.eventCount ?? 0);
        }
        this.place(unit, stream, offset);
        return;
      }
      case 'dead-letter': {
        const unit = this.singleUnit();
        unit.deadLetters.push(record.letter);
        this.place(unit, stream, offset);
        return;
      }
      default: {
        // Heartbeats, schema changes, logical messages: nothing for the views, but the offset counts.
        this.place(this.singleUnit(), stream, offset);
      }
    }
  }

  /** Every unit that can be applied now, in a safe order. */
  drain(): ChangeBatch[] {
    const out: ChangeBatch[] = [];
    for (let progress = true; progress; ) {
      progress = false;
      for (const fifo of this.fifos.values()) {
        const head = fifo[0];
        if (!head) continue;
        if (!this.complete(head)) {
          if (this.unblock(fifo)) progress = true;
          continue;
        }
        if (![...head.offsets.keys()].every((s) => this.fifos.get(s)?.[0] === head)) continue;
        for (const s of head.offsets.keys()) this.fifos.get(s)!.shift();
        head.released = true;
        if (head.txKey !== null) this.pending.delete(head.txKey);
        out.push(toBatch(head));
        progress = true;
      }
    }
    return out;
  }

  private complete(unit: Unit): boolean {
    if (unit.txKey === null) return true;
    return unit.ended && unit.changes.length >= (unit.expected ?? 0);
  }

  /**
   * A transaction whose END never comes (its records re-sent after the END was already applied)
   * would block its partitions forever. Once a later transaction has ended behind it, its END can
   * no longer arrive: release it as it is (the row images skip what was applied before).
   */
  private unblock(fifo: Unit[]): boolean {
    const head = fifo[0]!;
    if (head.ended || !fifo.some((u) => u !== head && u.txKey !== null && u.ended)) return false;
    head.ended = true;
    head.expected = head.changes.length;
    this.options.onForcedRelease?.(head.txKey!);
    return true;
  }

  private transactionUnit(txKey: string): Unit {
    let unit = this.pending.get(txKey);
    if (!unit) {
      unit = newUnit(txKey);
      this.pending.set(txKey, unit);
    }
    return unit;
  }

  private singleUnit(): Unit {
    return newUnit(null);
  }

  /** Record that `unit` holds `offset` of `stream`, and queue it there once. */
  private place(unit: Unit, stream: string, offset: bigint): void {
    const known = unit.offsets.get(stream);
    unit.offsets.set(stream, known === undefined || offset > known ? offset : known);
    let fifo = this.fifos.get(stream);
    if (!fifo) this.fifos.set(stream, (fifo = []));
    if (fifo.at(-1) !== unit) fifo.push(unit);
  }
}

function newUnit(txKey: string | null): Unit {
  return { txKey, changes: [], deadLetters: [], offsets: new Map(), expected: null, ended: false, snapshot: false, released: false };
}

function orderField(order: string | undefined): { order?: string } {
  return order === undefined ? {} : { order };
}

function tombstoneChange(table: string, key: NonNullable<Change['key']>): Change {
  return {
    table,
    op: 'd',
    before: null,
    after: null,
    key,
    source: { connector: 'postgresql', name: '', db: '', snapshot: false },
  };
}

function toBatch(unit: Unit): ChangeBatch {
  let commitTimeUs: number | undefined;
  for (const c of unit.changes) if (c.source.tsUs !== undefined && (commitTimeUs === undefined || c.source.tsUs > commitTimeUs)) commitTimeUs = c.source.tsUs;
  return {
    kind: unit.snapshot ? 'snapshot' : 'transaction',
    changes: unit.changes,
    position: [...unit.offsets].map(([stream, offset]) => ({ stream, token: offsetToken(offset) })),
    ...(commitTimeUs === undefined ? {} : { commitTimeUs }),
    ...(unit.deadLetters.length > 0 ? { deadLetters: unit.deadLetters } : {}),
  };
}
