/**
 * What a deployment's keyspace says about itself: the checkpoint, the step counter and epoch that
 * let a writer notice Redis going back in time, and each view's status. Written only under the
 * writer lease (every script here checks the fencing token first).
 *
 *   view status   building ──(snapshot done: reset entry, floor)──▶ live ──(schema change)──▶ stopped
 *                     ▲                                               │
 *                     └──── rebuild (wipe, new epoch) · backfill ◀────┘
 *
 * A view being backfilled (its definition changed, it had stopped, an operator asked) is building
 * while the others stay live: its rows and operator state are deleted, its changelog kept (the
 * reset entry that ends the backfill starts its new history).
 */
import { randomBytes } from 'node:crypto';
import type { SourcePosition } from '../../ingest/change.ts';
import {
  storageOf,
  RETIRED_FIELD,
  BACKFILL_WINDOW_FIELD,
  backfillImagesPattern,
  busyKey,
  changelogKey,
  checkpointKey,
  imagesKey,
  leaseKey,
  metaKey,
  requestsKey,
} from './keys.ts';
import { LuaScript, scanKeys, type RedisClient } from './redis.ts';

export type ViewState = 'building' | 'live' | 'stopped';

export interface ViewStatus {
  readonly state: ViewState;
  /** Why a view is building or stopped, in words an operator can act on. */
  readonly reason?: string;
  /** When it entered this state (ms since epoch). */
  readonly since: number;
  /** Built again while the other views stay live, with each table's progress. */
  readonly backfill?: { readonly tables: readonly BackfillProgress[] };
}

export interface BackfillProgress {
  readonly table: string;
  readonly rows: number;
  readonly estimatedRows: number;
  readonly done: boolean;
}

export interface StoredState {
  readonly checkpoint: SourcePosition | null;
  /** Steps written since the last rebuild; null when the keyspace holds no checkpoint. */
  readonly step: number | null;
  readonly epoch: string | null;
  /** `<txn>:<part>` of a transaction applied in parts, up to that part. */
  readonly pending: string | null;
  readonly layout: string | null;
  readonly fingerprints: string | null;
  /** A rebuild asked for by a schema change, with its reason. */
  readonly rebuild: string | null;
  readonly views: ReadonlyMap<string, ViewStatus>;
  /** Views in the middle of a transaction applied in parts. */
  readonly busy: ReadonlySet<string>;
  /** Views an operator asked to rebuild, with why. */
  readonly requests: ReadonlyMap<string, string>;
  /** An open backfill window (JSON, views/backfill.ts). */
  readonly window: string | null;
  /** Per view: the fingerprint of the definition served, and that definition as data (def:<view>). */
  readonly served: ReadonlyMap<string, { readonly fingerprint: string; readonly definition: string | null }>;
  /** Storages a swap retired that may still hold keys. */
  readonly retired: readonly string[];
  /** Views whose changed definition is built beside the one served: that definition's status. */
  readonly next: ReadonlyMap<string, ViewStatus & { readonly fingerprint: string }>;
}

export async function readStoredState(redis: RedisClient, prefix: string): Promise<StoredState> {
  const [checkpointFlat, metaFlat, busy, requests] = await Promise.all([
    redis.sendCommand<string[]>(['HGETALL', checkpointKey(prefix)]),
    redis.sendCommand<string[]>(['HGETALL', metaKey(prefix)]),
    redis.sendCommand<string[]>(['HKEYS', busyKey(prefix)]),
    redis.sendCommand<string[]>(['HGETALL', requestsKey(prefix)]),
  ]);
  const checkpoint = toRecord(checkpointFlat);
  const meta = toRecord(metaFlat);
  const views = new Map<string, ViewStatus>();
  const served = new Map<string, { fingerprint: string; definition: string | null }>();
  const next = new Map<string, ViewStatus & { fingerprint: string }>();
  for (const [field, value] of Object.entries(meta)) {
    if (field.startsWith('status:'))
      views.set(field.slice('status:'.length), JSON.parse(value) as ViewStatus);
    else if (field.startsWith('fp:'))
      served.set(field.slice(3), { fingerprint: value, definition: meta[`def:${field.slice(3)}`] ?? null });
    else if (field.startsWith('next:'))
      next.set(field.slice(5), JSON.parse(value) as ViewStatus & { fingerprint: string });
  }
  const positions = Object.entries(checkpoint)
    .filter(([stream]) => !stream.startsWith('~'))
    .map(([stream, token]) => ({ stream, token }));
  return {
    checkpoint: positions.length > 0 ? positions : null,
    step: checkpoint['~step'] === undefined ? null : Number(checkpoint['~step']),
    epoch: checkpoint['~epoch'] ?? null,
    pending: checkpoint['~pending'] ?? null,
    layout: meta['layout'] ?? null,
    fingerprints: meta['fingerprints'] ?? null,
    rebuild: meta['rebuild'] ?? null,
    views,
    busy: new Set(busy),
    requests: new Map(Object.entries(toRecord(requests))),
    window: meta[BACKFILL_WINDOW_FIELD] ?? null,
    served,
    retired: meta[RETIRED_FIELD] ? (JSON.parse(meta[RETIRED_FIELD]) as string[]) : [],
    next,
  };
}

/**
 * The status to show for a view of this config: that of its definition built beside the one served
 * (a swap) when there is one, with `beside` set; else the served one's.
 */
export function statusOf(
  stored: StoredState,
  view: { readonly name: string; readonly fingerprint: string },
): { status: ViewStatus | undefined; beside: boolean } {
  const next = stored.next.get(view.name);
  if (next?.fingerprint === view.fingerprint) return { status: next, beside: true };
  return { status: stored.views.get(view.name), beside: false };
}

export function toRecord(flat: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]!] = flat[i + 1]!;
  return record;
}

/** Thrown when a script finds the lease is not ours: another writer owns the deployment now. */
export class FencedError extends Error {
  readonly holder: string | null;
  constructor(holder: string | null) {
    super(
      `This instance no longer holds the writer lease (${holder ? `held by ${holder}` : 'expired'}); it stops writing`,
    );
    this.name = 'FencedError';
    this.holder = holder;
  }
}

const FENCE = `
local lease = redis.call('GET', KEYS[1])
if lease ~= ARGV[1] then return {'fenced', lease or ''} end
`;

/** UNLINK keys, only while holding the lease (the lease key itself is never among them). */
const FENCED_UNLINK = new LuaScript(`${FENCE}
for i = 2, #ARGV do redis.call('UNLINK', ARGV[i]) end
return {'ok', #ARGV - 1}
`);

/**
 * Start a rebuild: delete every key of the deployment except the lease, then write the meta and
 * a fresh checkpoint (step 0, new epoch) with every view building. SCAN runs outside the lease
 * check; each UNLINK batch is fenced, so a writer that lost its lease stops wiping at once.
 */
export async function wipeForRebuild(
  redis: RedisClient,
  prefix: string,
  token: string,
  init: {
    layout: string;
    fingerprints: string;
    views: readonly { name: string; fingerprint: string; definition: string }[];
    reason: string;
  },
): Promise<{ epoch: string }> {
  const lease = leaseKey(prefix);
  for await (const keys of scanKeys(redis, `${prefix}:*`)) {
    // Reactions' dead letters are the operator's, not the views': they outlive a rebuild.
    const doomed = keys.filter((k) => k !== lease && k !== `${lease}:n` && !k.startsWith(`${prefix}:r:`));
    if (doomed.length > 0) {
      const [status, holder] = await FENCED_UNLINK.run<[string, string]>(redis, [lease], [token, ...doomed]);
      if (status === 'fenced') throw new FencedError(holder || null);
    }
  }
  const epoch = randomBytes(6).toString('hex');
  const status: ViewStatus = { state: 'building', reason: init.reason, since: Date.now() };
  const meta = ['layout', init.layout, 'fingerprints', init.fingerprints];
  for (const v of init.views)
    meta.push(
      `status:${v.name}`,
      JSON.stringify(status),
      `fp:${v.name}`,
      v.fingerprint,
      `def:${v.name}`,
      v.definition,
    );
  const [result, holder] = await INIT.run<[string, string]>(
    redis,
    [lease, metaKey(prefix), checkpointKey(prefix)],
    [token, epoch, ...meta],
  );
  if (result === 'fenced') throw new FencedError(holder || null);
  return { epoch };
}

const INIT = new LuaScript(`${FENCE}
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[3], '~step', '0', '~epoch', ARGV[2])
local meta = {}
for i = 3, #ARGV do meta[#meta + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(meta))
return {'ok', ''}
`);

/**
 * Delete views the config no longer declares — rows, index, changelog, operator state, meta and
 * busy fields — under the lease, and record the remaining views' fingerprints.
 */
export async function dropViews(
  redis: RedisClient,
  prefix: string,
  token: string,
  views: readonly string[],
  fingerprints: string,
): Promise<void> {
  await unlinkViewKeys(redis, prefix, token, views, { keepChangelog: false });
  await writeMeta(
    redis,
    prefix,
    token,
    { fingerprints },
    views.flatMap((v) => [`status:${v}`, `fp:${v}`, `floor:${v}`, `def:${v}`, `next:${v}`]),
  );
  await redis.sendCommand(['HDEL', busyKey(prefix), ...views]);
}

/**
 * Make views ready to be backfilled while the others stay live: delete their rows, indexes and
 * operator state (their changelog stays: the backfill ends with a reset entry in it), mark them
 * building with why, and record their fingerprints and definitions. A view in `swapping` keeps the
 * definition it serves (its storage, status, fingerprint and definition): its new one is recorded
 * as `next:<view>`, and takes over at the hand-over (engine.ts).
 */
export async function prepareBackfill(
  redis: RedisClient,
  prefix: string,
  token: string,
  views: ReadonlyMap<string, string>,
  current: {
    readonly fingerprints: Readonly<Record<string, string>>;
    readonly definitions: ReadonlyMap<string, string>;
  },
  swapping: ReadonlyMap<string, string>,
): Promise<Map<string, ViewStatus>> {
  const statuses = new Map<string, ViewStatus>();
  const served = Object.fromEntries(
    Object.entries(current.fingerprints).map(([v, fp]) => [v, swapping.get(v) ?? fp]),
  );
  const fields: Record<string, string> = { fingerprints: JSON.stringify(served) };
  const keep = new Set([...swapping].map(([view, fp]) => storageOf(view, fp)));
  await unlinkViewKeys(redis, prefix, token, [...views.keys()], { keepChangelog: true, keep });
  for (const [view, reason] of views) {
    const status: ViewStatus = {
      state: 'building',
      reason: `backfilling: ${reason}`,
      since: Date.now(),
      backfill: { tables: [] },
    };
    statuses.set(view, status);
    if (swapping.has(view)) {
      fields[`next:${view}`] = JSON.stringify({ ...status, fingerprint: current.fingerprints[view]! });
      continue;
    }
    fields[`status:${view}`] = JSON.stringify(status);
    fields[`fp:${view}`] = current.fingerprints[view]!;
    fields[`def:${view}`] = current.definitions.get(view)!;
  }
  await writeMeta(
    redis,
    prefix,
    token,
    fields,
    [...views.keys()].filter((v) => !swapping.has(v)).map((v) => `next:${v}`),
  );
  await redis.sendCommand(['HDEL', busyKey(prefix), ...views.keys()]);
  return statuses;
}

/**
 * Forget swaps a later start abandoned (the config serves the old definition again): delete the
 * keys of every definition of these views but the served one (`view → served fingerprint`), and
 * their `next:` status.
 */
export async function dropAbandonedSwaps(
  redis: RedisClient,
  prefix: string,
  token: string,
  served: ReadonlyMap<string, string>,
): Promise<void> {
  const keep = new Set([...served].map(([view, fp]) => storageOf(view, fp)));
  await unlinkViewKeys(redis, prefix, token, [...served.keys()], { keepChangelog: true, keep });
  await writeMeta(
    redis,
    prefix,
    token,
    {},
    [...served.keys()].map((v) => `next:${v}`),
  );
}

/** Delete the row images of backfills other than `keep` (a backfill that did not finish left them). */
export async function dropBackfillImages(
  redis: RedisClient,
  prefix: string,
  token: string,
  keep: string | null,
): Promise<void> {
  await unlinkMatching(
    redis,
    prefix,
    token,
    backfillImagesPattern(prefix),
    (key) => keep === null || !key.startsWith(imagesKey(prefix, keep)),
  );
}

/**
 * Merge a backfill's row images into the main ones (entry by entry: it read the same records, with
 * the columns the new views read too), then delete them. Each batch is written under the lease;
 * merging again after a crash gives the same images.
 */
export async function mergeImages(
  redis: RedisClient,
  prefix: string,
  token: string,
  namespace: string,
  tables: readonly string[],
): Promise<void> {
  for (const table of tables) {
    const from = imagesKey(prefix, namespace + table);
    let cursor = '0';
    do {
      const [next, flat] = await redis.sendCommand<[string, string[]]>([
        'HSCAN',
        from,
        cursor,
        'COUNT',
        '1000',
      ]);
      cursor = next;
      if (flat.length === 0) continue;
      const [status, holder] = await FENCED_HSET.run<[string, string]>(
        redis,
        [leaseKey(prefix), imagesKey(prefix, table)],
        [token, ...flat],
      );
      if (status === 'fenced') throw new FencedError(holder || null);
    } while (cursor !== '0');
  }
  await unlinkMatching(redis, prefix, token, backfillImagesPattern(prefix), (key) =>
    key.startsWith(imagesKey(prefix, namespace)),
  );
}

const FENCED_HSET = new LuaScript(`${FENCE}
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return {'ok', ''}
`);

async function unlinkMatching(
  redis: RedisClient,
  prefix: string,
  token: string,
  pattern: string,
  wanted: (key: string) => boolean,
): Promise<void> {
  for await (const found of scanKeys(redis, pattern)) {
    const keys = found.filter(wanted);
    if (keys.length > 0) {
      const [status, holder] = await FENCED_UNLINK.run<[string, string]>(
        redis,
        [leaseKey(prefix)],
        [token, ...keys],
      );
      if (status === 'fenced') throw new FencedError(holder || null);
    }
  }
}

/**
 * UNLINK the rows, indexes and operator state of these views, of every storage (definition) but
 * `keep`, and their changelogs unless kept; fenced. One pass over the keyspace for all of them.
 */
async function unlinkViewKeys(
  redis: RedisClient,
  prefix: string,
  token: string,
  views: readonly string[],
  options: { keepChangelog: boolean; keep?: ReadonlySet<string> },
): Promise<void> {
  if (views.length === 0) return;
  const names = new Set(views);
  const logs = new Set(views.map((view) => changelogKey(prefix, view)));
  await unlinkMatching(redis, prefix, token, `${prefix}:[vsl]*`, (key) => {
    if (logs.has(key)) return !options.keepChangelog;
    const storage = storageInKey(prefix, key);
    return (
      storage !== null && names.has(storage.slice(0, storage.indexOf('~'))) && !options.keep?.has(storage)
    );
  });
}

/** The storage a view key or operator state key belongs to (`v:<storage>:…`, `s:<storage>/…`), else null. */
export function storageInKey(prefix: string, key: string): string | null {
  const rest = key.startsWith(`${prefix}:v:`)
    ? key.slice(prefix.length + 3)
    : key.startsWith(`${prefix}:s:`)
      ? key.slice(prefix.length + 3)
      : null;
  if (rest === null) return null;
  const end = key[prefix.length + 1] === 'v' ? rest.indexOf(':') : rest.indexOf('/');
  const storage = end < 0 ? rest : rest.slice(0, end);
  return storage.includes('~') ? storage : null;
}

/** Delete what these storages hold (definitions a swap retired), fenced. */
export async function dropStorages(
  redis: RedisClient,
  prefix: string,
  token: string,
  storages: ReadonlySet<string>,
): Promise<void> {
  if (storages.size === 0) return;
  await unlinkMatching(redis, prefix, token, `${prefix}:[vs]:*`, (key) => {
    const storage = storageInKey(prefix, key);
    return storage !== null && storages.has(storage);
  });
}

/** Set fields of the meta hash under the lease (view statuses, a rebuild request). */
export async function writeMeta(
  redis: RedisClient,
  prefix: string,
  token: string,
  fields: Record<string, string>,
  remove: readonly string[] = [],
): Promise<void> {
  const args = [token, String(Object.keys(fields).length)];
  for (const [k, v] of Object.entries(fields)) args.push(k, v);
  args.push(...remove);
  const [result, holder] = await WRITE_META.run<[string, string]>(
    redis,
    [leaseKey(prefix), metaKey(prefix)],
    args,
  );
  if (result === 'fenced') throw new FencedError(holder || null);
}

const WRITE_META = new LuaScript(`${FENCE}
local n = tonumber(ARGV[2])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[3 + 2 * i], ARGV[4 + 2 * i]) end
for i = 3 + 2 * n, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return {'ok', ''}
`);
