/**
 * Join fan-outs joined after their step, a chunk per step (operators/join.ts defers them): one change
 * meeting a million rows on the other side of a join never becomes a million deltas in memory or one
 * giant write step.
 *
 *   step that defers ──▶ stores the jobs (fanout hash) and marks their views busy, atomically
 *   chunk steps      ──▶ HSCAN the bucket from the stored cursor, COUNT fanoutChunk; rows already
 *                        joined (the job's done hash: HSCAN may repeat one) are skipped; the rest go
 *                        through the join's downstream operators only (runBatch seeded with them);
 *                        the cursor and the done rows are written in the same step
 *   last chunk       ──▶ the job and its done hash go; once no job is left, the engine writes a reset
 *                        entry for the views and takes them out of busy (like a transaction in parts)
 *
 * Nothing else runs meanwhile (the engine finishes every job before it plans the next batch, and
 * resumes stored jobs when it starts), so the buckets do not change under a job.
 */
import { randomBytes } from 'node:crypto';
import { Join, type FanoutJob } from '../operators/join.ts';
import type { Row } from '../operators/types.ts';
import { fanoutDoneKey, fanoutKey } from '../store/keys.ts';
import type { RedisClient } from '../store/redis.ts';
import type { StateStore } from '../store/state-store.ts';
import type { Dataflow } from './graph.ts';
import { runBatch, type RunResult } from './run.ts';

/** A deferred job as stored: its id, where its HSCAN is, and the views it changes. */
export interface StoredFanout {
  readonly id: string;
  readonly job: FanoutJob;
  readonly views: readonly string[];
  readonly cursor: string;
}

/** Store a step's deferred jobs with the step's writes; returns them as stored. */
export function storeDeferred(
  store: StateStore,
  prefix: string,
  deferred: RunResult['deferred'],
): StoredFanout[] {
  return deferred.map(({ job, views }) => {
    const stored: StoredFanout = { id: randomBytes(6).toString('hex'), job, views, cursor: '0' };
    store.hset(fanoutKey(prefix), stored.id, JSON.stringify(stored));
    return stored;
  });
}

/** The jobs stored, oldest first is not promised: any order gives the same result. */
export async function readFanouts(redis: RedisClient, prefix: string): Promise<StoredFanout[]> {
  const flat = await redis.sendCommand<string[]>(['HGETALL', fanoutKey(prefix)]);
  const jobs: StoredFanout[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) jobs.push(JSON.parse(flat[i + 1]!) as StoredFanout);
  return jobs;
}

/**
 * Plan one chunk of a job (its writes are left in the store for the caller's step). `skip`: views not
 * maintained (stopped). `finished`: the job ends with this step. A job whose join is not in the
 * dataflow any more (its view removed) just ends.
 */
export async function planFanoutChunk(
  flow: Dataflow,
  store: StateStore,
  redis: RedisClient,
  prefix: string,
  fanout: StoredFanout,
  skip: ReadonlySet<string>,
): Promise<{ result: RunResult | null; finished: boolean }> {
  const join = flow.order.find((op): op is Join => op instanceof Join && op.id === fanout.job.join);
  const done = fanoutDoneKey(prefix, fanout.id);
  const end = (): void => {
    store.hdel(fanoutKey(prefix), fanout.id);
    store.del(done);
  };
  if (!join || skip.has(flow.owner.get(join)!)) {
    end();
    return { result: null, finished: true };
  }
  const [next, flat] = await redis.sendCommand<[string, string[]]>([
    'HSCAN',
    join.bucket(fanout.job.scan, fanout.job.jk),
    fanout.cursor,
    'COUNT',
    String(join.fanoutChunk),
  ]);
  const page = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) page.set(flat[i]!, flat[i + 1]!);
  await store.load([...page.keys()].map((field) => ({ kind: 'hget', key: done, field })));
  const rows: [string, Row][] = [];
  for (const [key, json] of page)
    if (store.hget(done, key) === null) rows.push([key, join.bucketRow(fanout.job.scan, json)]);
  const views = new Set(fanout.views);
  const others = [...flow.outputs.keys()].filter((v) => !views.has(v));
  const result = await runBatch(flow, [], store, {
    skip: new Set([...others, ...skip]),
    quiet: views,
    seed: new Map([[join, { clear: false, deltas: join.chunkDeltas(fanout.job, rows) }]]),
  });
  if (next === '0') end();
  else {
    for (const [key] of rows) store.hset(done, key, '1');
    store.hset(
      fanoutKey(prefix),
      fanout.id,
      JSON.stringify({ ...fanout, cursor: next } satisfies StoredFanout),
    );
  }
  return { result, finished: next === '0' };
}
