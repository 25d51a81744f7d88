/**
 * Row images make at-least-once delivery exact: duplicates and older re-sends are skipped, the old
 * row comes from the image, unchanged TOAST values are filled in.
 */
import { describe, expect, it } from 'vitest';
import { UNAVAILABLE, type Change, type ChangeRow } from '../../../ingest/change.ts';
import { source } from '../../../ingest/source-options.ts';
import { count, sum, table, view } from '../../../views/define.ts';
import { defineConfig } from '../../../views/config.ts';
import { encodeRowKey } from '../../../core/encoding.ts';
import { decodeImage, encodeImage, imageKeysOf, isNewer, resolveWithImages, TRUNCATED_FIELD } from '../../../views/plan/row-images.ts';
import { createRegistry } from '../../../views/registry.ts';

const orders = table('public.orders', { id: 'int4', customer: 'int4', note: 'text?', amount: 'numeric' }, { key: 'id' });
const registry = createRegistry(
  defineConfig({
    source: source.kafka({ topicPrefix: 'app' }),
    views: { totals: view(orders).groupBy((o) => ({ customer: o.customer })).select((o) => ({ n: count(), total: sum(o.amount) })) },
  }),
);
const key = (id: number): string => encodeRowKey(['int4'], [id]);
const src = { connector: 'postgresql', name: 'app', db: 'db', snapshot: false } as const;
const at = (lsn: number, kind = 't'): string => `${kind}${String(lsn).padStart(20, '0')}`;
function ev(op: Change['op'], id: number, after: ChangeRow | null, order: string | undefined, before: ChangeRow | null = null): Change {
  return { table: 'public.orders', op, before, after, key: { id }, source: src, ...(order === undefined ? {} : { order }) };
}
const stored = (entries: [number, string][]) => new Map([['public.orders', new Map(entries.map(([id, v]) => [key(id), v]))]]);

describe('resolveWithImages', () => {
  it('skips a change not newer than its row image (a re-sent duplicate), keeps newer ones', () => {
    const image = encodeImage({ order: at(200), row: { id: 1, customer: 7, amount: '5.00' } });
    const { changes, skipped } = resolveWithImages(
      registry,
      [ev('u', 1, { id: 1, customer: 7, amount: '4.00' }, at(150)), ev('u', 1, { id: 1, customer: 7, amount: '5.00' }, at(200)), ev('u', 1, { id: 1, customer: 8, amount: '6.00' }, at(250))],
      stored([[1, image]]),
    );
    expect(skipped).toBe(2);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ op: 'u', before: { id: 1, customer: 7, amount: '5.00' }, after: { customer: 8, amount: '6.00' } });
  });

  it("takes the old row from the image, never from the event (Debezium's placeholders under REPLICA IDENTITY DEFAULT)", () => {
    const image = encodeImage({ order: at(100), row: { id: 1, customer: 7, amount: '5.00' } });
    const { changes, writes } = resolveWithImages(registry, [ev('d', 1, null, at(300), { id: 1, customer: 0, amount: '0' })], stored([[1, image]]));
    expect(changes[0]).toMatchObject({ op: 'd', before: { id: 1, customer: 7, amount: '5.00' }, after: null });
    // The delete leaves a marker with its order, so an older re-sent insert cannot bring the row back.
    const written = writes.set.get('public.orders')!.get(key(1))!;
    expect(written.expected).toBe(image);
    expect(decodeImage(written.value)).toEqual({ order: at(300), row: null });
    expect(resolveWithImages(registry, [ev('c', 1, { id: 1, customer: 7, amount: '5.00' }, at(100))], stored([[1, written.value]])).changes).toEqual([]);
  });

  it('skips what a connector re-sends from before a TRUNCATE it already applied (the TRUNCATE dropped the images)', () => {
    // Applied: insert 1 at 100, TRUNCATE at 200, insert 2 at 300. The TRUNCATE leaves its order.
    const first = resolveWithImages(registry, [ev('c', 1, { id: 1, customer: 7, amount: '5.00' }, at(100)), ev('t', 0, null, at(200)), ev('c', 2, { id: 2, customer: 7, amount: '1.00' }, at(300))], stored([]));
    expect(first.changes.map((c) => c.op)).toEqual(['c', 't', 'c']);
    const tableWrites = first.writes.set.get('public.orders')!;
    expect(tableWrites.get(TRUNCATED_FIELD)).toEqual({ expected: null, value: at(200) });
    // What Redis holds after that step (the TRUNCATE cleared the hash first, then these were set).
    const held = new Map([...tableWrites].map(([k, v]) => [k, v.value]));
    const redis = new Map([['public.orders', held]]);
    // The connector restarts and sends all three again: nothing applies twice, no row comes back.
    const again = [ev('c', 1, { id: 1, customer: 7, amount: '5.00' }, at(100)), ev('t', 0, null, at(200)), ev('c', 2, { id: 2, customer: 7, amount: '1.00' }, at(300))];
    const needed = imageKeysOf(registry, again).get('public.orders')!;
    expect(needed.has(TRUNCATED_FIELD)).toBe(true);
    const replay = resolveWithImages(registry, again, new Map([['public.orders', new Map([...needed].map((k) => [k, redis.get('public.orders')!.get(k) ?? null]))]]));
    expect(replay.changes).toEqual([]);
    expect(replay.skipped).toBe(3);
    // A later TRUNCATE, and changes after it, apply.
    const later = resolveWithImages(registry, [ev('t', 0, null, at(400)), ev('c', 1, { id: 1, customer: 9, amount: '2.00' }, at(500))], redis);
    expect(later.changes.map((c) => c.op)).toEqual(['t', 'c']);
    // A snapshot read tagged with the TRUNCATE's own position was read after it; one tagged before, not.
    const reads = resolveWithImages(registry, [ev('r', 7, { id: 7, customer: 1, amount: '1.00' }, at(200, 's')), ev('r', 8, { id: 8, customer: 1, amount: '1.00' }, at(199, 's'))], redis);
    expect(reads.changes.map((c) => c.key)).toEqual([{ id: 7 }]);
    expect(reads.skipped).toBe(1);
  });

  it('turns a snapshot read of a known row into an update, and fills unchanged TOAST values', () => {
    const image = encodeImage({ order: at(100, 's'), row: { id: 1, customer: 7, amount: '5.00' } });
    const reRead = resolveWithImages(registry, [ev('r', 1, { id: 1, customer: 9, amount: '1.00' }, at(120, 's'))], stored([[1, image]]));
    expect(reRead.changes[0]).toMatchObject({ op: 'u', before: { customer: 7 }, after: { customer: 9 } });
    const toast = resolveWithImages(registry, [ev('u', 1, { id: 1, customer: 7, amount: UNAVAILABLE }, at(130))], stored([[1, image]]));
    expect(toast.changes[0]!.after).toEqual({ id: 1, customer: 7, amount: '5.00' });
  });

  it('chains several changes to one row inside a batch, and checks only the first read', () => {
    const { changes, writes } = resolveWithImages(
      registry,
      [ev('c', 2, { id: 2, customer: 1, amount: '1.00' }, at(10)), ev('u', 2, { id: 2, customer: 2, amount: '2.00' }, at(11)), ev('c', 2, { id: 2, customer: 1, amount: '1.00' }, at(10))],
      new Map(),
    );
    expect(changes.map((c) => [c.op, c.before?.['customer'] ?? null])).toEqual([
      ['c', null],
      ['u', 1],
    ]);
    expect(writes.set.get('public.orders')!.get(key(2))!.expected).toBe('');
  });

  it('orders streamed changes after snapshot reads regardless of position, and positions otherwise', () => {
    expect(isNewer(at(50), at(100, 's'))).toBe(true); // a transaction open during the snapshot commits after it
    expect(isNewer(at(150, 's'), at(100))).toBe(true);
    expect(isNewer(at(100, 's'), at(100, 's'))).toBe(false);
    expect(isNewer(at(99), at(100))).toBe(false);
  });
});
