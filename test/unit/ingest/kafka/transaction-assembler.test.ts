/**
 * Releasing whole transactions across topics, in an order that never lets a stored Kafka position
 * pass a record that is not yet applied.
 */
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../ingest/change.ts';
import type { DecodedRecord } from '../../../../ingest/kafka/debezium-decoder.ts';
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

describe('TransactionAssembler', () => {
  it('holds a transaction spanning two topics until its END and all its events arrived, then releases it whole', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 10n, record: inTx(change('public.orders', 1)) });
    a.add({ topic: 'app.transaction', partition: 0, offset: 3n, record: end('7:200', { 'public.orders': 1, 'public.items': 1, 'public.other': 5 }) });
    expect(a.drain()).toEqual([]);
    a.add({ topic: 'app.public.items', partition: 0, offset: 4n, record: inTx(change('public.items', 2)) });
    const [batch, ...rest] = a.drain();
    expect(rest).toEqual([]);
    expect(batch!.changes.map((c) => [c.table, c.key])).toEqual([
      ['public.orders', { id: 1 }],
      ['public.items', { id: 2 }],
    ]);
    expect(batch!.position).toEqual([
      { stream: 'kafka:app.public.orders:0', token: offsetToken(10n) },
      { stream: 'kafka:app.transaction:0', token: offsetToken(3n) },
      { stream: 'kafka:app.public.items:0', token: offsetToken(4n) },
    ]);
    expect(batch!.changes[0]!.order).toBe(`t${'101'.padStart(20, '0')}`);
  });

  it('keeps records behind an open transaction in their partition, so positions never skip ahead', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTx(change('public.orders', 1)) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: { kind: 'change', change: change('public.orders', 2, 'r') } });
    expect(a.drain()).toEqual([]);
    a.add({ topic: 'app.transaction', partition: 0, offset: 0n, record: end('7:300', { 'public.orders': 1 }) });
    expect(a.drain().map((b) => [b.kind, b.position[0]!.token])).toEqual([
      ['transaction', offsetToken(1n)],
      ['snapshot', offsetToken(2n)],
    ]);
  });

  it('without transaction metadata, releases every record on its own at once', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 5n, record: { kind: 'change', change: change('public.orders', 1) } });
    a.add({ topic: 'app.public.orders', partition: 1, offset: 9n, record: { kind: 'change', change: change('public.orders', 2) } });
    expect(a.drain().map((b) => b.position)).toEqual([
      [{ stream: 'kafka:app.public.orders:0', token: offsetToken(5n) }],
      [{ stream: 'kafka:app.public.orders:1', token: offsetToken(9n) }],
    ]);
  });

  it('counts the tombstone after a delete with the delete, and turns a lone tombstone into a delete by key', () => {
    const a = assembler();
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: { kind: 'change', change: change('public.orders', 1, 'd') } });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: { kind: 'tombstone', table: 'public.orders', key: { id: 1 } } });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 3n, record: { kind: 'tombstone', table: 'public.orders', key: { id: 9 } } });
    const batches = a.drain();
    expect(batches.map((b) => [b.changes.map((c) => [c.op, c.key]), b.position[0]!.token])).toEqual([
      [[['d', { id: 1 }]], offsetToken(2n)],
      [[['d', { id: 9 }]], offsetToken(3n)],
    ]);
    expect(batches[1]!.changes[0]!.order).toBeUndefined();
  });

  it('parks an undecodable record in order, as a dead letter with its position', () => {
    const a = assembler();
    const letter = { reason: 'decode(debezium): expected JSON', payload: '{}' };
    a.add({ topic: 'app.public.orders', partition: 0, offset: 4n, record: { kind: 'dead-letter', letter } });
    expect(a.drain()).toEqual([{ kind: 'transaction', changes: [], position: [{ stream: 'kafka:app.public.orders:0', token: offsetToken(4n) }], deadLetters: [letter] }]);
  });

  it("releases a re-sent transaction whose END was already consumed once a later transaction ends behind it", () => {
    const released: string[] = [];
    const a = new TransactionAssembler({ tables: new Set(['public.orders']), orderOf, onForcedRelease: (k) => released.push(k) });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 1n, record: inTx(change('public.orders', 1), '5:101') });
    a.add({ topic: 'app.public.orders', partition: 0, offset: 2n, record: inTx(change('public.orders', 2), '6:102') });
    a.add({ topic: 'app.transaction', partition: 0, offset: 8n, record: end('6:400', { 'public.orders': 1 }) });
    expect(a.drain().map((b) => b.changes.map((c) => c.key))).toEqual([[{ id: 1 }], [{ id: 2 }]]);
    expect(released).toEqual(['5']);
  });

  it('groups PostgreSQL events by xid (Debezium writes <xid>:<lsn>), MySQL ones by the whole GTID', () => {
    expect(transactionKey('571:34503280')).toBe('571');
    expect(transactionKey('3E11FA47-71CA-11E1-9E33-C80AA9429562:23')).toBe('3E11FA47-71CA-11E1-9E33-C80AA9429562:23');
    expect(transactionKey('0-1-42')).toBe('0-1-42');
  });
});
