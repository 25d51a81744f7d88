/**
 * The Lua write step on real Redis against the reference semantics the in-memory property tests
 * rely on (MemoryRedis.apply: every write in order): random sequences of writes over a few keys —
 * the same field set and deleted again, keys deleted between writes, multisets with their extra
 * copies, changelog entries with a floor — must leave Redis exactly as MemoryRedis.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { checkpointKey, keyPrefix, leaseKey } from '../../views/store/keys.ts';
import { connectRedis, type RedisClient } from '../../views/store/redis.ts';
import type { WriteOp } from '../../views/store/state-store.ts';
import { StepWrites, writeStep } from '../../views/store/write-step.ts';
import { MemoryRedis } from '../support/memory-redis.ts';
import { uniqueName } from '../support/shop.ts';

const write = (prefix: string): fc.Arbitrary<WriteOp> => {
  const hash = fc.constantFrom(`${prefix}:h1`, `${prefix}:h2`);
  const zset = fc.constantFrom(`${prefix}:z1`, `${prefix}:z2`);
  const item = fc.constantFrom('a', 'b', 'c', 'é', 'd');
  const multiset = fc.constantFrom(
    { key: `${prefix}:m1`, extras: `${prefix}:m1x` },
    { key: `${prefix}:m2`, extras: `${prefix}:m2x` },
  );
  // Values around the packer's short-string bound (31/32 units), with non-ASCII and astral characters.
  const value = fc.oneof(
    fc.string({ maxLength: 3 }),
    fc.string({ minLength: 30, maxLength: 33 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
  );
  const anyKey = fc.constantFrom(
    // Not the stream: a new stream's ids may repeat a deleted one's, which a floor cannot tell apart here.
    ...['h1', 'h2', 'z1', 'z2', 'm1', 'm1x', 'm2', 'm2x'].map((k) => `${prefix}:${k}`),
  );
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('hset' as const), key: hash, field: item, value }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('hdel' as const), key: hash, field: item }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('zadd' as const), key: zset, member: item }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('zrem' as const), key: zset, member: item }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('del' as const), key: anyKey }) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom('madd' as const, 'mrem' as const), multiset, item, fc.integer({ min: 1, max: 3 }))
        .map(([op, m, member, n]) => ({ op, key: m.key, extras: m.extras, member, n })),
    },
    {
      // A view row's changelog entry (packed without its field names).
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom('i', 'u', 'd'), item, value, value, fc.boolean()).map(([o, k, r, p, last]) => ({
        op: 'xadd' as const,
        key: `${prefix}:s1`,
        maxLength: 1000,
        fields: ['o', o, 'k', k, 'r', r, 'p', p, 'n', '7', ...(last ? ['e', '1'] : [])],
      })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(value, fc.boolean()).map(([value, floor]) => ({
        op: 'xadd' as const,
        key: `${prefix}:s1`,
        maxLength: 1000,
        fields: ['v', value],
        ...(floor ? { floor: { key: `${prefix}:meta`, field: 'floor' } } : {}),
      })),
    },
  );
};

/** A key's content, comparable across the two: streams by their fields, the floor by the entry it names. */
async function snapshot(redis: RedisClient, keys: readonly string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await redis.sendCommand<string>(['TYPE', key]);
    if (type === 'hash') out[key] = Object.fromEntries(chunk(await redis.sendCommand<string[]>(['HGETALL', key])));
    else if (type === 'zset') out[key] = await redis.sendCommand<string[]>(['ZRANGE', key, '-', '+', 'BYLEX']);
    else if (type === 'stream') out[key] = (await redis.sendCommand<[string, string[]][]>(['XRANGE', key, '-', '+'])).map(([id, f]) => [id, f]);
  }
  return out;
}

function chunk(flat: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  return pairs;
}

function memorySnapshot(memory: MemoryRedis, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const entry = memory.data.get(key);
    if (!entry) continue;
    if (entry.type === 'hash') out[key] = Object.fromEntries(memory.hgetall(key));
    else if (entry.type === 'zset') out[key] = memory.zmembers(key);
    else if (entry.type === 'stream') out[key] = memory.xrange(key).map(([id, f]) => [id, [...f]]);
  }
  return out;
}

/** Stream ids differ between the two: name each entry by its place, and the floor by the place of the entry it holds. */
function normalize(snap: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const stream = (snap[`${prefix}:s1`] as [string, string[]][] | undefined) ?? [];
  const place = new Map(stream.map(([id], i) => [id, i]));
  const out: Record<string, unknown> = { ...snap };
  if (stream.length > 0) out[`${prefix}:s1`] = stream.map(([, f]) => f);
  const meta = snap[`${prefix}:meta`] as Record<string, string> | undefined;
  if (meta?.floor !== undefined) out[`${prefix}:meta`] = { floor: place.get(meta.floor) ?? `gone:${meta.floor === undefined}` };
  return out;
}

describe('the write step', () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = await connectRedis(inject('redisUrl'));
  });
  afterAll(() => redis?.quit());

  async function run(writes: readonly WriteOp[]): Promise<void> {
    const prefix = keyPrefix(uniqueName('ws'));
    const keyed = writes.map((w) => JSON.parse(JSON.stringify(w).replaceAll('{P}', prefix)) as WriteOp);
    await redis.sendCommand(['SET', leaseKey(prefix), 'token']);
    await redis.sendCommand(['HSET', checkpointKey(prefix), '~step', '0']);
    const control = { lease: 'token', step: 0, stepId: 's1', part: null, busy: [], meta: [] };
    const packed = StepWrites.of(keyed);
    // What the property tests apply to MemoryRedis is the packed step read back.
    expect(packed.decode()).toEqual(keyed);
    const result = await writeStep(redis, prefix, control, [], packed, [], null);
    expect(result.status).toBe('applied');
    const memory = new MemoryRedis();
    memory.apply(keyed);
    const keys = ['h1', 'h2', 'z1', 'z2', 'm1', 'm1x', 'm2', 'm2x', 's1', 'meta'].map((k) => `${prefix}:${k}`);
    expect(normalize(await snapshot(redis, keys), prefix)).toEqual(normalize(memorySnapshot(memory, keys), prefix));
    for (const key of keys) await redis.sendCommand(['DEL', key]);
    await redis.sendCommand(['DEL', leaseKey(prefix), checkpointKey(prefix)]);
  }

  it('leaves Redis as the writes applied one by one would', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(write('{P}'), { minLength: 1, maxLength: 60 }), async (writes) => {
        await run(writes);
      }),
      { numRuns: 1000 },
    );
  });
});
