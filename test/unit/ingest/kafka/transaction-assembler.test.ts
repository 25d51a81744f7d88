/**
 * Releasing whole transactions across topics, in an order that never lets a stored Kafka position
 * pass a record that is not yet applied.
 */
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../ingest/change.ts';
import type { DecodedRecord } from '../../../../ingest/kafka/debezium/index.ts';
import { orderOf } from '../../../../ingest/kafka/kafka-source.ts';
import { offsetToken, TransactionAssembler, transactionKey } from '../../../../ingest/kafka/transaction-assembler.ts';

const change = (table: string, id: number, op: Change['op'] = 'c', lsn = 100 + id): Change => ({
  table,
  op,
  before: null,
  after: op === 'd' ? null : { id },
  key: { id },
  source: { connector: 'postgresql', name: 'app', db: 'db', lsn: String(lsn), txId: '7', snapshot: false },
});
const inTx = (c: Change, id = `7:${c.source.lsn}`): DecodedRecord => ({ kind: 'change', change: c, transaction: { id, totalOrder: 1, dataCollectionOrder: 1 } });
const end = (id: string, counts: Record<string, number>): DecodedRecord => ({
  kind: 'transaction',
  status: 'END',
  id,
  eventCount: Object.values(counts).reduce((a, b) => a + b, 0),
  dataCollections: Object.entries(counts).map(([table, eventCount]) => ({ table, eventCount })),
});

function assembler(): TransactionAssembler {
  return new TransactionAssembler({ tables: new Set(['public.orders', 'public.items']), orderOf });
}

const inTxAt = (c: Change, id: string, totalOrder: number): DecodedRecord => ({ kind: 'change', change: c, transaction: { id, totalOrder, dataCollectionOrder: 1 } });
const positions = (batches: { position: readonly { stream: string; token: string }[] }[]) =>
  batches.map((b) => Object.fromEntries(b.position.map((p) => [p.stream.replace('kafka:app.', ''), BigInt(p.token)])));

describe('TransactionAssembler', () => {
  it('holds a transaction spanning two topics until its END and all its events arrived, then releases it whole', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 10n, record: inTx(change('public.orders', 1)) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 3n, record: end('7:200', { 'public.orders': 1, 'public.items': 1, 'public.other': 5 }) });
    expect(a.drain()).toEqual([]);
    a.add({ topic: 'app.public.items', partition: 0, offset: 4n, record: inTxAt(change('public.items', 2), '7:102', 2) });
    const [batch, ...rest] = a.drain();
    expect(rest).toEqual([]);
    expect(batch!.changes.map((c) => [c.table, c.key])).toEqual([
      ['public.orders', { id: 1 }],
      ['public.items', { id: 2 }],
    ]);
    expect(positions([batch!])).toEqual([{ 'public.orders:0': 10n, 'public.items:0': 4n, 'transaction:0': 3n }]);
    expect(batch!.changes[0]!.order).toBe(`t${'101'.padStart(20, '0')}`);
    expect(a.size).toBe(0);
  });

  it('releases a record of its own at once, but its partition position waits for an open transaction elsewhere', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTx(change('public.orders', 1)) });
    a.add({ topic: 'app.public.items', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.items', 2, 'r') } });
    a.add({ topic: 'app.public.orders', partition: 1, offset: 7n, record: { kind: 'change', change: change('public.orders', 3, 'r') } });
    const early = a.drain();
    expect(early.map((b) => [b.kind, b.changes.length])).toEqual([['snapshot', 1], ['snapshot', 1]]);
    expect(positions(early)).toEqual([{ 'public.items:0': 1n }, { 'public.orders:1': 7n }]);
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('7:300', { 'public.orders': 1 }) });
    expect(positions(a.drain())).toEqual([{ 'public.orders:0': 1n, 'transaction:0': 0n }]);
  });

  it('releases transactions in the order of their ENDs (commit order)', () => {
    const a = assembler();
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('1:10', { 'public.orders': 1 }) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 1n, record: end('2:20', { 'public.items': 1 }) });
    a.add({ topic: 'app.public.items', partition: 0, offset: 0n, record: inTxAt(change('public.items', 2), '2:19', 1) });
    expect(a.drain()).toEqual([]);
    a.add({ topic: 'app.public.orders', partition: 0, offset: 0n, record: inTxAt(change('public.orders', 1), '1:9', 1) });
    expect(a.drain().map((b) => b.changes.map((c) => c.table))).toEqual([['public.orders'], ['public.items']]);
  });

  it('without transaction metadata, releases every record on its own at once', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 5n, record: { kind: 'change', change: change('public.orders', 1) } });
    a.add({ topic: 'app.public.orders', partition: 1, offset: 9n, record: { kind: 'change', change: change('public.orders', 2) } });
    expect(positions(a.drain())).toEqual([{ 'public.orders:0': 5n }, { 'public.orders:1': 9n }]);
  });

  it('counts the tombstone after a delete with the delete, and turns a lone tombstone into a delete by key', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.orders', 1, 'd') } });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: { kind: 'tombstone', table: 'public.orders', key: { id: 1 } } });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 3n, record: { kind: 'tombstone', table: 'public.orders', key: { id: 9 } } });
    const batches = a.drain();
    expect(batches.map((b) => b.changes.map((c) => [c.op, c.key]))).toEqual([[['d', { id: 1 }]], [['d', { id: 9 }]]]);
    expect(positions(batches)).toEqual([{ 'public.orders:0': 2n }, { 'public.orders:0': 3n }]);
    // A tombstone arriving after its delete went out is counted on its own.
    a.add({ topic: 'app.public.orders', partition: 0, offset: 4n, record: { kind: 'change', change: change('public.orders', 5, 'd') } });
    expect(a.drain()).toHaveLength(1);
    a.add({ topic: 'app.public.orders', partition: 0, offset: 5n, record: { kind: 'tombstone', table: 'public.orders', key: { id: 5 } } });
    expect(a.drain().map((b) => [b.changes, positions([b])[0]])).toEqual([[[], { 'public.orders:0': 5n }]]);
    expect(batches[1]!.changes[0]!.order).toBeUndefined();
  });

  it('parks an undecodable record in order, as a dead letter with its position', () => {
    const a = assembler();
    const letter = { reason: 'decode(debezium): expected JSON', payload: '{}' };
    a.add({ topic: 'app.public.orders', partition: 0, offset: 4n, record: { kind: 'dead-letter', letter } });
    expect(a.drain()).toEqual([{ kind: 'transaction', changes: [], position: [{ stream: 'kafka:app.public.orders:0', token: offsetToken(4n) }], deadLetters: [letter] }]);
  });

  it('after a connector restart re-sends records, neither deadlocks nor counts a re-sent event twice', () => {
    // First pass: tx2's orders record is lost when Kafka Connect is killed; its END and items record arrived.
    const a = assembler();
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('1:10', { 'public.orders': 1 }) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 0n, record: inTxAt(change('public.orders', 1), '1:9', 1) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 1n, record: end('2:20', { 'public.orders': 1, 'public.items': 1 }) });
    a.add({ topic: 'app.public.items', partition: 0, offset: 0n, record: inTxAt(change('public.items', 2), '2:19', 2) });
    expect(a.drain().map((b) => b.changes.map((c) => c.key))).toEqual([[{ id: 1 }]]);
    // Debezium re-sends from its last committed offset: the items record again first, then the rest.
    a.add({ topic: 'app.public.items', partition: 0, offset: 1n, record: inTxAt(change('public.items', 2), '2:19', 2) });
    expect(a.drain()).toEqual([]); // the copy does not complete tx2
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTxAt(change('public.orders', 1), '1:9', 1) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: inTxAt(change('public.orders', 3), '2:18', 1) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 2n, record: end('1:10', { 'public.orders': 1 }) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 3n, record: end('2:20', { 'public.orders': 1, 'public.items': 1 }) });
    const batches = a.drain();
    // tx1's copies (record, END) are units of their own (the row images skip them); tx2 lands whole.
    expect(batches.map((b) => b.changes.map((c) => c.key))).toEqual([[{ id: 1 }], [{ id: 3 }, { id: 2 }], []]);
    // The copy of tx2's items record was dropped while tx2 was open: counted with the skipped changes.
    expect(batches.map((b) => b.skipped ?? 0)).toEqual([0, 1, 0]);
    expect(a.size).toBe(0);
  });

  it('releases a transaction short of an event once a later transaction has overtaken it in that topic', () => {
    const released: string[] = [];
    const a = new TransactionAssembler({ tables: new Set(['public.orders']), orderOf, onForcedRelease: (k) => released.push(k) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('5:50', { 'public.orders': 2 }) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 0n, record: inTxAt(change('public.orders', 1), '5:49', 1) });
    expect(a.drain()).toEqual([]);
    a.add({ topic: 'app.transaction', partition: 0, offset: 1n, record: end('6:60', { 'public.orders': 1 }) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTxAt(change('public.orders', 2), '6:59', 1) });
    expect(a.drain().map((b) => b.changes.map((c) => c.key))).toEqual([[{ id: 1 }], [{ id: 2 }]]);
    expect(released).toEqual(['5']);
  });

  it('applies a MySQL TRUNCATE at once although Debezium sends its BEGIN and never an END', () => {
    const a = assembler();
    const truncate: Change = { table: 'public.orders', op: 't', before: null, after: null, key: null, source: { connector: 'mariadb', name: 'app', db: 'shop', snapshot: false } };
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: { kind: 'transaction', status: 'BEGIN', id: '0-1-7' } });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 0n, record: { kind: 'change', change: truncate, transaction: { id: '0-1-7', totalOrder: 1, dataCollectionOrder: 1 } } });
    const batches = a.drain();
    expect(batches.flatMap((b) => b.changes.map((c) => c.op))).toEqual(['t']);
    expect(a.size).toBe(0);
  });

  it('groups PostgreSQL events by xid (Debezium writes <xid>:<lsn>), MySQL ones by the whole GTID', () => {
    expect(transactionKey('571:34503280')).toBe('571');
    expect(transactionKey('3E11FA47-71CA-11E1-9E33-C80AA9429562:23')).toBe('3E11FA47-71CA-11E1-9E33-C80AA9429562:23');
    expect(transactionKey('0-1-42')).toBe('0-1-42');
  });
});

describe('TransactionAssembler, units of their own', () => {
  it('holds a record of its own (a truncate) behind the open transaction before it in its partition', () => {
    const a = assembler();
    const truncate: Change = { ...change('public.orders', 0, 't'), key: null, after: null };
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTx(change('public.orders', 1, 'u')) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: { kind: 'change', change: truncate } });
    a.add({ topic: 'app.public.items', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.items', 5, 'r') } });
    expect(a.drain().map((b) => b.changes.map((c) => [c.table, c.op]))).toEqual([[['public.items', 'r']]]);
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('7:300', { 'public.orders': 1 }) });
    expect(a.drain().map((b) => b.changes.map((c) => c.op))).toEqual([['u'], ['t']]);
  });
});

describe('TransactionAssembler, schema changes', () => {
  const dropped = { kind: 'columnsDropped', table: 'public.items', columns: ['price'] } as const;

  it('sends the shape changes a record revealed with the transaction that holds the record, and only there', () => {
    const a = assembler();
    a.add({ topic: 'app.public.items', partition: 0, offset: 1n, record: inTxAt(change('public.items', 1), '7:101', 1) });
    a.add({ topic: 'app.public.items', partition: 0, offset: 2n, record: inTxAt(change('public.items', 2), '7:102', 2), schemaChanges: [dropped] });
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('7:300', { 'public.items': 2 }) });
    a.add({ topic: 'app.public.items', partition: 0, offset: 3n, record: inTxAt(change('public.items', 3), '8:103', 1), schemaChanges: [] });
    a.add({ topic: 'app.transaction', partition: 0, offset: 1n, record: end('8:400', { 'public.items': 1 }) });
    const batches = a.drain();
    expect(batches.map((b) => [b.changes.map((c) => c.key), b.schemaChanges])).toEqual([
      [[{ id: 1 }, { id: 2 }], [dropped]],
      [[{ id: 3 }], undefined],
    ]);
  });

  it('on a record of its own (no transaction metadata), with that record', () => {
    const a = assembler();
    a.add({ topic: 'app.public.items', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.items', 1) } });
    a.add({ topic: 'app.public.items', partition: 0, offset: 2n, record: { kind: 'change', change: change('public.items', 2) }, schemaChanges: [dropped] });
    expect(a.drain().map((b) => b.schemaChanges)).toEqual([undefined, [dropped]]);
  });
});

describe('TransactionAssembler: transactions too large to hold go out in parts', () => {
  const begin = (id: string): DecodedRecord => ({ kind: 'transaction', status: 'BEGIN', id });
  /** Transaction 9: seven order events (statement order 1…7), then four item events (8…11). */
  const events = [
    ...Array.from({ length: 7 }, (_, i) => ({ topic: 'app.public.orders', table: 'public.orders', id: i + 1, tableOrder: i + 1, totalOrder: i + 1 })),
    ...Array.from({ length: 4 }, (_, i) => ({ topic: 'app.public.items', table: 'public.items', id: 100 + i, tableOrder: i + 1, totalOrder: 8 + i })),
  ];
  const record = (e: (typeof events)[number]): DecodedRecord => ({
    kind: 'change',
    change: change(e.table, e.id),
    transaction: { id: '9:500', totalOrder: e.totalOrder, dataCollectionOrder: e.tableOrder },
  });
  /** Feed the transaction in the given arrival order (a record's offset is its place in its topic). */
  function run(order: readonly number[], extra: (a: TransactionAssembler, step: number) => void = () => undefined) {
    const a = new TransactionAssembler({ tables: new Set(['public.orders', 'public.items']), orderOf, partChanges: 3 });
    const out: ReturnType<TransactionAssembler['drain']> = [];
    a.add({ topic: 'app.transaction', partition: 0, offset: 20n, record: begin('9:400') });
    order.forEach((n, step) => {
      const e = events[n]!;
      a.add({ topic: e.topic, partition: 0, offset: BigInt(e.table === 'public.orders' ? e.tableOrder : 50 + e.tableOrder), record: record(e) });
      extra(a, step);
      out.push(...a.drain());
    });
    a.add({ topic: 'app.transaction', partition: 0, offset: 21n, record: end('9:600', { 'public.orders': 7, 'public.items': 4 }) });
    out.push(...a.drain());
    return out;
  }
  const ids = (b: { changes: readonly Change[] }) => b.changes.map((c) => (c.key as { id: number }).id);

  it('cuts each table into parts of n events in statement order as they arrive, and sends the rest with the positions last', () => {
    const out = run([0, 7, 1, 2, 8, 3, 9, 4, 5, 10, 6]);
    expect(out.map((b) => [b.part?.index, b.part?.final, ids(b)])).toEqual([
      ['public.orders#1', false, [1, 2, 3]],
      ['public.items#1', false, [100, 101, 102]],
      ['public.orders#2', false, [4, 5, 6]],
      ['last', true, [7, 103]],
    ]);
    for (const part of out.slice(0, 3)) {
      expect(part.position).toEqual([]);
      expect(part.part!.txn).toBe('9');
      // The probe: the BEGIN, which the stored position passes only once the whole transaction is in.
      expect(part.part!.probe).toEqual([{ stream: 'kafka:app.transaction:0', token: offsetToken(20n) }]);
    }
    expect(positions(out.slice(3))).toEqual([{ 'public.orders:0': 7n, 'public.items:0': 54n, 'transaction:0': 21n }]);
  });

  it('a replay in another arrival order cuts the same parts (the engine recognises those it applied)', () => {
    const first = run([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const again = run([7, 8, 0, 9, 1, 10, 2, 3, 4, 5, 6]);
    const byId = (batches: typeof first) => Object.fromEntries(batches.map((b) => [b.part!.index, ids(b).sort((x, y) => x - y)]));
    expect(byId(again)).toEqual(byId(first));
  });

  it('ignores a re-sent copy of an event already handed out in a part', () => {
    const out = run([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (a, step) => {
      if (step === 4) a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: record(events[1]!) });
    });
    expect(out.flatMap(ids).sort((x, y) => x - y)).toEqual(events.map((e) => e.id).sort((x, y) => x - y));
  });

  it('lets nothing overtake a transaction in parts: a record of its own waits for the last part', () => {
    const out = run([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (a, step) => {
      if (step === 3) a.add({ topic: 'app.public.other', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.items', 999, 'r') } });
    });
    expect(out.map((b) => b.part?.index ?? ids(b).join())).toEqual(['public.orders#1', 'public.orders#2', 'public.items#1', 'last', '999']);
  });

  it('waits for an earlier transaction to go out before cutting parts of a later one', () => {
    const a = new TransactionAssembler({ tables: new Set(['public.orders', 'public.items']), orderOf, partChanges: 2 });
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: begin('1:10') });
    a.add({ topic: 'app.transaction', partition: 0, offset: 1n, record: end('1:11', { 'public.items': 1 }) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 2n, record: begin('2:20') });
    for (let i = 1; i <= 4; i++) {
      a.add({ topic: 'app.public.orders', partition: 0, offset: BigInt(i), record: { kind: 'change', change: change('public.orders', i), transaction: { id: '2:21', totalOrder: i, dataCollectionOrder: i } } });
    }
    expect(a.drain()).toEqual([]); // transaction 1's item has not arrived: it comes first
    a.add({ topic: 'app.public.items', partition: 0, offset: 0n, record: { kind: 'change', change: change('public.items', 50), transaction: { id: '1:9', totalOrder: 1, dataCollectionOrder: 1 } } });
    expect(a.drain().map((b) => [b.part?.index ?? 'whole', ids(b)])).toEqual([
      ['whole', [50]],
      ['public.orders#1', [1, 2]],
      ['public.orders#2', [3, 4]],
    ]);
  });
});
