/**
 * Debezium records → ChangeBatches, whole source transactions at a time, with Kafka positions that
 * never pass a record that is not applied yet. Pure (no Kafka client): the Kafka source feeds it
 * decoded records and applies what it releases.
 *
 *   data topics  ──record──▶ the unit of its transaction (envelope `transaction` block),
 *                            or a unit of its own (snapshot reads, no metadata, dead letters)
 *   <prefix>.transaction ──BEGIN/END──▶ the transaction's unit; END says how many events it has
 *
 * Release:
 *   - a unit of its own: at once, or, when transactions with earlier records in its partition are
 *     still open, right after them (a TRUNCATE must not overtake the transaction before it);
 *   - a transaction: once its END arrived and it holds that many distinct events (a re-sent copy of
 *     an event it already holds does not count twice), and only after every transaction whose END
 *     came earlier — so transactions land in commit order, each in one atomic step.
 *
 * Positions: per partition, the watermark is the highest offset below which every consumed record
 * belongs to a released unit; a batch carries the watermarks it advanced. An offset of the
 * transaction topic counts as released only once its transaction's records in the data topics are
 * below their watermarks too, so after a restart every transaction whose records are read again
 * has its END read again as well.
 *
 * Transactions too large to hold (more than `partChanges` events of a table) go out in parts as
 * their events arrive, once every earlier transaction is out: part <table>#k holds the table's
 * events k·n−n+1 … k·n in its statement order (Debezium's data_collection_order), a rule a replay
 * follows too, so the engine recognises a part it already applied (views/store/write-step.ts).
 * Parts carry no positions (their records stay below the watermarks); the rest of the transaction
 * goes out as its last part when it is complete, with the positions. Nothing else goes out while a
 * transaction is in parts.
 *
 * Shape changes of a table found in a record's schema (schema-tracker.ts) go out with the unit that
 * holds the record, so the engine acts on them before it plans that record.
 *
 * Debezium delivers at least once: after a connector restart it sends records again. Records of a
 * transaction already released become units of their own (the row images skip what was applied).
 * A transaction still waiting for a record that a later transaction's record has already overtaken
 * in the same topic can no longer get it (Kafka keeps a partition's order): it is released as it is.
 */
import type { Change, ChangeBatch, SchemaChange, SourceDeadLetter, SourcePosition } from '../change.ts';
import type { DecodedRecord } from './debezium/index.ts';

/** A record as the assembler sees it: where it came from, and what it decoded to (or why it did not). */
export interface AssemblerInput {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly record: DecodedRecord | { readonly kind: 'dead-letter'; readonly letter: SourceDeadLetter };
  /**
   * Shape changes of the change's table that this record revealed (schema-tracker.ts): they go out
   * with the batch that holds the record, so the engine has them before it plans the record.
   */
  readonly schemaChanges?: readonly SchemaChange[] | undefined;
}

interface Unit {
  readonly txKey: string | null;
  readonly changes: Change[];
  /** Each change's position in its transaction (Debezium total_order), to apply them in statement order. */
  readonly totalOrders: number[];
  /** Each change's position among its table's events in the transaction (data_collection_order). */
  readonly tableOrders: number[];
  /** Per table, the events already handed out in parts (positions 1 … n). */
  readonly emitted: Map<string, number>;
  /** Parts handed out so far. */
  parts: number;
  /** The BEGIN's stream and offset (parts may go out only once it is known). */
  begin: { stream: string; offset: bigint } | null;
  readonly deadLetters: SourceDeadLetter[];
  readonly schemaChanges: SchemaChange[];
  /** Highest offset per stream ('kafka:<topic>:<partition>') of the records it holds. */
  readonly offsets: Map<string, bigint>;
  /** Distinct events held (by their position in the transaction) and per table. */
  readonly seen: Set<number>;
  /** Re-sent copies of events it held, dropped (counted with the skipped changes). */
  duplicates: number;
  readonly seenPerTable: Map<string, number>;
  /** Events per subscribed table the END announced; null until the END arrives. */
  expected: Map<string, number> | null;
  /** The END's stream and offset (release order of transactions). */
  end: { stream: string; offset: bigint } | null;
  snapshot: boolean;
  /** Decided: queued for drain(). */
  done: boolean;
  /** Handed out by drain(): its records count for the watermarks. */
  released: boolean;
  /** A unit of its own waits for these transactions (open in its partition when it arrived). */
  blockers: Unit[];
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
  /** A transaction released without all the events its END announced. */
  readonly onForcedRelease?: (txKey: string) => void;
  /** How many released transaction ids to remember (to recognise re-sent records). */
  readonly rememberReleased?: number;
  /** Events of a table per part of a transaction too large to hold (default: never in parts). */
  readonly partChanges?: number;
}

/** Consumed offsets of one partition, in order, until every record up to them is released. */
class Watermark {
  private readonly pending: { offset: bigint; unit: Unit }[] = [];
  private head = 0;
  /** Highest offset with everything up to it released; null while nothing is. */
  value: bigint | null = null;
  emitted: bigint | null = null;

  add(offset: bigint, unit: Unit): void {
    // Consecutive records of one unit are one entry: a huge transaction costs one, not one per record.
    const last = this.pending.length > this.head ? this.pending[this.pending.length - 1]! : undefined;
    if (last?.unit === unit && offset > last.offset) last.offset = offset;
    else this.pending.push({ offset, unit });
  }

  /** Advance over released entries; `ready` may hold an entry back (transaction topic). */
  advance(ready: (unit: Unit) => boolean): boolean {
    const start = this.head;
    while (this.head < this.pending.length && ready(this.pending[this.head]!.unit)) {
      this.value = this.pending[this.head]!.offset;
      this.head++;
    }
    if (this.head > 1024) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
    return this.head !== start;
  }

  get size(): number {
    return this.pending.length - this.head;
  }
}

export class TransactionAssembler {
  private readonly options: AssemblerOptions;
  private readonly pending = new Map<string, Unit>();
  /** Ended transactions not yet released, in END order. */
  private readonly ended: Unit[] = [];
  private readonly released = new Set<string>();
  private readonly watermarks = new Map<string, Watermark>();
  private readonly transactionStreams = new Set<string>();
  /** Per stream, the END offset of the latest-ending transaction seen with a record in it. */
  private readonly overtaken = new Map<string, bigint>();
  /** The streams (partitions) each table's records came from. */
  private readonly tableStreams = new Map<string, Set<string>>();
  private readonly out: (Unit | ChangeBatch)[] = [];
  /** The transaction being handed out in parts, until its last part. */
  private inParts: Unit | null = null;
  /** Per stream, the transactions with records there that are not released yet. */
  private readonly openTransactions = new Map<string, Set<Unit>>();
  /** Per stream, units of their own waiting for those transactions (in offset order). */
  private readonly waitingSingles = new Map<string, Unit[]>();
  /** The last data record per stream: a tombstone right after a delete of its key belongs to it. */
  private readonly lastRecord = new Map<string, { key: string; op: string; unit: Unit }>();

  constructor(options: AssemblerOptions) {
    this.options = options;
  }

  /** Records consumed but not yet covered by a watermark (0: everything consumed is released). */
  get size(): number {
    let n = 0;
    for (const w of this.watermarks.values()) n += w.size;
    return n;
  }

  add({ topic, partition, offset, record, schemaChanges }: AssemblerInput): void {
    const stream = streamOf(topic, partition);
    switch (record.kind) {
      case 'change': {
        const change = { ...record.change, ...orderField(this.options.orderOf(record.change)) };
        const txKey = record.transaction ? transactionKey(record.transaction.id) : null;
        if (txKey !== null && isTruncateOnItsOwn(change)) {
          // MySQL/MariaDB commit implicitly around TRUNCATE: Debezium sends its BEGIN but never an END.
          this.retire(txKey);
          this.addSingle(stream, offset, (u) => {
            withShape(u, schemaChanges);
            u.changes.push(change);
          });
          return;
        }
        let streams = this.tableStreams.get(change.table);
        if (!streams) this.tableStreams.set(change.table, (streams = new Set()));
        streams.add(stream);
        if (txKey === null || this.released.has(txKey)) {
          // No transaction metadata, a snapshot read, or a re-sent record of a transaction already applied.
          const unit = this.addSingle(stream, offset, (u) => {
            u.snapshot = change.op === 'r';
            withShape(u, schemaChanges);
            u.changes.push(change);
          });
          this.lastRecord.set(stream, { key: JSON.stringify(change.key), op: change.op, unit });
          return;
        }
        const unit = this.transaction(txKey);
        withShape(unit, schemaChanges);
        const position = record.transaction?.totalOrder;
        const tableOrder = record.transaction?.dataCollectionOrder;
        if ((position !== undefined && unit.seen.has(position)) || (tableOrder !== undefined && tableOrder <= (unit.emitted.get(change.table) ?? 0))) {
          this.place(unit, stream, offset); // a re-sent copy of an event it holds, or handed out in a part
          unit.duplicates++;
          return;
        }
        if (position !== undefined) unit.seen.add(position);
        unit.seenPerTable.set(change.table, (unit.seenPerTable.get(change.table) ?? 0) + 1);
        if (unit.end) this.noteOvertaking(stream, unit.end.offset);
        unit.changes.push(change);
        unit.totalOrders.push(record.transaction?.totalOrder ?? unit.changes.length);
        unit.tableOrders.push(tableOrder ?? 0);
        this.place(unit, stream, offset);
        this.lastRecord.set(stream, { key: JSON.stringify(change.key), op: change.op, unit });
        return;
      }
      case 'tombstone': {
        const last = this.lastRecord.get(stream);
        if (last && last.op === 'd' && last.key === JSON.stringify(record.key)) {
          // The usual tombstone after a delete: nothing to do, its offset goes with the delete.
          if (last.unit.released) this.addSingle(stream, offset);
          else this.place(last.unit, stream, offset);
          return;
        }
        // A lone tombstone (e.g. delete.tombstone.handling.mode=tombstone): a delete by key.
        this.addSingle(stream, offset, (u) => record.key && u.changes.push(tombstoneChange(record.table, record.key)));
        return;
      }
      case 'transaction': {
        this.transactionStreams.add(stream);
        const txKey = transactionKey(record.id);
        if (this.released.has(txKey)) {
          this.addSingle(stream, offset);
          return;
        }
        const unit = this.place(this.transaction(txKey), stream, offset);
        if (record.status === 'BEGIN' && !unit.begin) unit.begin = { stream, offset };
        if (record.status === 'END' && !unit.end) {
          unit.end = { stream, offset };
          unit.expected = new Map(
            (record.dataCollections ?? []).filter((c) => this.options.tables.has(c.table)).map((c) => [c.table, c.eventCount]),
          );
          for (const s of unit.offsets.keys()) if (!this.transactionStreams.has(s)) this.noteOvertaking(s, offset);
          this.ended.push(unit);
          this.ended.sort((a, b) => (a.end!.offset < b.end!.offset ? -1 : a.end!.offset > b.end!.offset ? 1 : 0));
        }
        return;
      }
      case 'dead-letter': {
        this.addSingle(stream, offset, (u) => u.deadLetters.push(record.letter));
        return;
      }
      default:
        // Heartbeats, schema changes, logical messages: nothing for the views, but the offset counts.
        this.addSingle(stream, offset);
    }
  }

  /** Every unit that can be applied now, in order, each with the watermarks it advances. */
  drain(): ChangeBatch[] {
    while (this.ended[0] && this.complete(this.ended[0])) this.release(this.ended.shift()!);
    this.cutParts();
    while (this.ended[0] && this.complete(this.ended[0])) this.release(this.ended.shift()!);
    const batches: ChangeBatch[] = [];
    for (const item of this.out.splice(0)) {
      if (!('txKey' in item)) {
        batches.push(item); // a part: no positions of its own
        continue;
      }
      // Released only now, in hand-out order: a batch's watermarks cover no later batch's records.
      item.released = true;
      const batch = toBatch(item, this.advanceWatermarks());
      batches.push(item.parts > 0 ? { ...batch, part: { txn: item.txKey!, index: 'last', final: true, probe: probeOf(item) } } : batch);
    }
    return batches;
  }

  /** Hand out the parts a transaction too large to hold has ready (see the header). */
  private cutParts(): void {
    const size = this.options.partChanges;
    if (!size) return;
    for (const unit of this.pending.values()) {
      if (unit.done || unit.begin === null || unit.changes.length < size || unit.schemaChanges.length > 0) continue;
      if (this.inParts !== null && this.inParts !== unit) continue;
      // Every transaction before it must be out. The transaction topic is read in order, so one
      // whose BEGIN is not here yet began after it; one that ended or began before its BEGIN is earlier.
      const begin = unit.begin;
      const earlier = (u: Unit): boolean =>
        u !== unit && !u.done && ((u.end !== null && u.end.offset < begin.offset) || (u.begin !== null && u.begin.offset < begin.offset));
      if ([...this.pending.values()].some(earlier)) continue;
      for (;;) {
        const part = this.nextPart(unit, size);
        if (!part) break;
        this.inParts = unit;
        this.out.push(part);
      }
    }
  }

  /** The next part of a table's events, when all of them are here. */
  private nextPart(unit: Unit, size: number): ChangeBatch | null {
    const byTable = new Map<string, Map<number, number>>();
    unit.changes.forEach((c, i) => {
      let m = byTable.get(c.table);
      if (!m) byTable.set(c.table, (m = new Map()));
      m.set(unit.tableOrders[i]!, i);
    });
    for (const [table, held] of [...byTable].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const from = (unit.emitted.get(table) ?? 0) + 1;
      const indexes: number[] = [];
      for (let o = from; o < from + size; o++) {
        const i = held.get(o);
        if (i === undefined) break;
        indexes.push(i);
      }
      if (indexes.length < size) continue;
      const taken = new Set(indexes);
      const changes = indexes.map((i) => unit.changes[i]!);
      for (const i of indexes) unit.seen.delete(unit.totalOrders[i]!);
      for (const list of [unit.changes, unit.totalOrders, unit.tableOrders] as unknown[][]) {
        let w = 0;
        for (let r = 0; r < list.length; r++) if (!taken.has(r)) list[w++] = list[r];
        list.length = w;
      }
      unit.emitted.set(table, from + size - 1);
      unit.parts++;
      const k = (from - 1) / size + 1;
      return { kind: 'transaction', changes, position: [], part: { txn: unit.txKey!, index: `${table}#${k}`, final: false, probe: probeOf(unit) } };
    }
    return null;
  }

  private complete(unit: Unit): boolean {
    let short = false;
    for (const [table, count] of unit.expected ?? []) {
      if ((unit.seenPerTable.get(table) ?? 0) >= count) continue;
      // In every partition of this table's topic a record of a transaction that ended later has
      // arrived: ours can no longer come (Kafka keeps a partition's order). Release what there is.
      const streams = this.tableStreams.get(table);
      const end = unit.end!.offset;
      if (!streams?.size || ![...streams].every((s) => (this.overtaken.get(s) ?? -1n) > end)) return false;
      short = true;
    }
    if (short) this.options.onForcedRelease?.(unit.txKey!);
    return true;
  }

  private noteOvertaking(stream: string, endOffset: bigint): void {
    if ((this.overtaken.get(stream) ?? -1n) < endOffset) this.overtaken.set(stream, endOffset);
  }

  /** Queue a unit for drain() (its offsets count as released once drain() hands it out). */
  private release(unit: Unit): void {
    unit.done = true;
    this.out.push(unit);
    if (this.inParts === unit) {
      this.inParts = null;
      // Units of their own held back for it in streams it had no records in.
      for (const stream of this.waitingSingles.keys()) if (!unit.offsets.has(stream)) this.releaseWaiting(stream);
    }
    if (unit.txKey === null) return;
    // Records of one transaction arrive per topic; apply them in the transaction's statement order.
    const order = unit.changes.map((c, i) => [unit.totalOrders[i]!, c] as const).sort((x, y) => x[0] - y[0]);
    unit.changes.splice(0, unit.changes.length, ...order.map(([, c]) => c));
    this.pending.delete(unit.txKey);
    this.remember(unit.txKey);
    // Units of their own that waited for this transaction follow it.
    for (const stream of unit.offsets.keys()) {
      this.openTransactions.get(stream)?.delete(unit);
      this.releaseWaiting(stream);
    }
  }

  /** A transaction that will never end normally (MySQL TRUNCATE): its BEGIN is released, its id remembered. */
  private retire(txKey: string): void {
    const unit = this.pending.get(txKey);
    if (unit) {
      const i = this.ended.indexOf(unit);
      if (i >= 0) this.ended.splice(i, 1);
      this.release(unit);
    }
    this.remember(txKey);
  }

  private remember(txKey: string): void {
    this.released.add(txKey);
    if (this.released.size > (this.options.rememberReleased ?? 100_000)) {
      this.released.delete(this.released.values().next().value!);
    }
  }

  /** The watermarks after everything released so far; the changed ones since the last batch. */
  private advanceWatermarks(): Map<string, bigint> {
    for (const [stream, w] of this.watermarks) if (!this.transactionStreams.has(stream)) w.advance((u) => u.released);
    const covered = (unit: Unit): boolean =>
      unit.released &&
      [...unit.offsets].every(([s, o]) => this.transactionStreams.has(s) || (this.watermarks.get(s)?.value ?? -1n) >= o);
    for (const stream of this.transactionStreams) this.watermarks.get(stream)?.advance(covered);
    const changed = new Map<string, bigint>();
    for (const [stream, w] of this.watermarks) {
      if (w.value !== null && w.value !== w.emitted) {
        changed.set(stream, w.value);
        w.emitted = w.value;
      }
    }
    return changed;
  }

  private transaction(txKey: string): Unit {
    let unit = this.pending.get(txKey);
    if (!unit) this.pending.set(txKey, (unit = newUnit(txKey)));
    return unit;
  }

  /**
   * A unit of its own for one record. It goes out at once, unless transactions with earlier records
   * in its partition are still open: then it waits for them (a TRUNCATE must not overtake the
   * transaction before it), behind any unit of its own already waiting there.
   */
  private addSingle(stream: string, offset: bigint, fill?: (unit: Unit) => unknown): Unit {
    const unit = newUnit(null);
    fill?.(unit);
    this.place(unit, stream, offset);
    const open = [...(this.openTransactions.get(stream) ?? [])];
    // Nothing overtakes a transaction in parts: its views are half-applied until its last part.
    if (this.inParts !== null && !this.inParts.done && !open.includes(this.inParts)) open.push(this.inParts);
    const waiting = this.waitingSingles.get(stream) ?? [];
    if (open.length === 0 && waiting.length === 0) this.release(unit);
    else {
      unit.blockers = open;
      waiting.push(unit);
      this.waitingSingles.set(stream, waiting);
    }
    return unit;
  }

  /** Units of their own waiting in `stream` whose blockers are all released now go out, in order. */
  private releaseWaiting(stream: string): void {
    const waiting = this.waitingSingles.get(stream);
    while (waiting?.[0] && waiting[0].blockers.every((b) => b.done)) this.release(waiting.shift()!);
  }

  /** Record that `unit` holds `offset` of `stream`. */
  private place(unit: Unit, stream: string, offset: bigint): Unit {
    if (unit.txKey !== null && !unit.done) {
      let open = this.openTransactions.get(stream);
      if (!open) this.openTransactions.set(stream, (open = new Set()));
      open.add(unit);
    }
    const known = unit.offsets.get(stream);
    if (known === undefined || offset > known) unit.offsets.set(stream, offset);
    let w = this.watermarks.get(stream);
    if (!w) this.watermarks.set(stream, (w = new Watermark()));
    w.add(offset, unit);
    return unit;
  }
}

/**
 * MySQL and MariaDB commit implicitly before and after TRUNCATE, so it is a transaction of its own,
 * and Debezium's MySQL-family connectors send its BEGIN but never an END (the binlog has no XID
 * event for it).
 */
function isTruncateOnItsOwn(change: Change): boolean {
  return change.op === 't' && (change.source.connector === 'mysql' || change.source.connector === 'mariadb');
}

function withShape(unit: Unit, schemaChanges: readonly SchemaChange[] | undefined): void {
  if (schemaChanges !== undefined && schemaChanges.length > 0) unit.schemaChanges.push(...schemaChanges);
}

function newUnit(txKey: string | null): Unit {
  return {
    txKey,
    changes: [],
    totalOrders: [],
    tableOrders: [],
    emitted: new Map(),
    parts: 0,
    begin: null,
    deadLetters: [],
    schemaChanges: [],
    offsets: new Map(),
    seen: new Set(),
    duplicates: 0,
    seenPerTable: new Map(),
    expected: null,
    end: null,
    snapshot: false,
    done: false,
    released: false,
    blockers: [],
  };
}

/** A position the stored checkpoint passes only once the transaction is applied whole: its BEGIN. */
function probeOf(unit: Unit): SourcePosition {
  return unit.begin ? [{ stream: unit.begin.stream, token: offsetToken(unit.begin.offset) }] : [];
}

function orderField(order: string | undefined): { order?: string } {
  return order === undefined ? {} : { order };
}

function tombstoneChange(table: string, key: NonNullable<Change['key']>): Change {
  return { table, op: 'd', before: null, after: null, key, source: { connector: 'postgresql', name: '', db: '', snapshot: false } };
}

function toBatch(unit: Unit, watermarks: ReadonlyMap<string, bigint>): ChangeBatch {
  let commitTimeUs: number | undefined;
  for (const c of unit.changes) if (c.source.tsUs !== undefined && (commitTimeUs === undefined || c.source.tsUs > commitTimeUs)) commitTimeUs = c.source.tsUs;
  return {
    kind: unit.snapshot ? 'snapshot' : 'transaction',
    changes: unit.changes,
    position: [...watermarks].map(([stream, offset]) => ({ stream, token: offsetToken(offset) })),
    ...(commitTimeUs === undefined ? {} : { commitTimeUs }),
    ...(unit.deadLetters.length > 0 ? { deadLetters: unit.deadLetters } : {}),
    ...(unit.schemaChanges.length > 0 ? { schemaChanges: unit.schemaChanges } : {}),
    ...(unit.duplicates > 0 ? { skipped: unit.duplicates } : {}),
  };
}
