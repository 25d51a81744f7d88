/**
 * Every Redis key of a deployment, in one place, for TypeScript and for the Lua scripts alike.
 *
 *   cdcv:{<deployment>}:lease               STRING the writer's lease (value = fencing token), with a TTL
 *   cdcv:{<deployment>}:checkpoint          HASH   stream → position token (the source checkpoint), and
 *                                                  ~step (steps written since the last rebuild), ~epoch
 *                                                  (id of that rebuild), ~pending (<txn>:<part> of a
 *                                                  transaction applied in parts, while it is)
 *   cdcv:{<deployment>}:meta                HASH   layout, fingerprints; per view: status:<view> (JSON
 *                                                  ViewStatus), fp:<view> (fingerprint), floor:<view>
 *                                                  (the version its current history starts at),
 *                                                  def:<view> (its definition as data, which a writer
 *                                                  with another config can still maintain:
 *                                                  views/stored-definitions.ts), next:<view> (JSON
 *                                                  ViewStatus of a changed definition being built
 *                                                  beside it); backfill-window (views/backfill.ts),
 *                                                  while one is open; retired (JSON list of storages
 *                                                  a swap left behind, until they are deleted)
 *   cdcv:{<deployment>}:requests            HASH   view → why an operator asked to rebuild it (`cdc-views
 *                                                  rebuild`); the writer takes it at its next start
 *   cdcv:{<deployment>}:busy                HASH   view → transaction being applied to it in parts
 *   cdcv:{<deployment>}:parts               HASH   <txn>:<part> → 1, the parts of that transaction written
 *                                                  so far (a replay skips them); gone with its last part
 *   cdcv:{<deployment>}:fanout              HASH   id → JSON of a join fan-out deferred to after its step
 *                                                  (plan/fanout.ts: the join, its key, the deltas, the
 *                                                  HSCAN cursor reached, the views it changes); its views
 *                                                  are in busy (value 'fanout') until the last one ends
 *   cdcv:{<deployment>}:fanout:<id>:done    HASH   row key → 1: the bucket rows that job has joined
 *                                                  (HSCAN may return a row twice); gone with the job
 *   cdcv:{<deployment>}:seq                 HASH   view → number of its last changelog entry (entries are numbered without gaps)
 *   cdcv:{<deployment>}:dlq                 STREAM dead letters (changes that could not be applied)
 *   cdcv:{<deployment>}:img:<table>         HASH   encoded key → "<order>\n<row>" (at-least-once sources only);
 *                                                  img:backfill~<id>~<table>: a backfill's own, until merged
 *   cdcv:{<deployment>}:log:<view>          STREAM changelog, one entry per changed row: the version;
 *                                                  a view's history, whichever definition it shows
 *
 * A view's rows and operator state are kept per definition, under its *storage* `<view>~<fp>` (the
 * fingerprint's first 8 hex digits, storageOf): a changed definition is built beside
 * the one served, and swapped in by one write of fp:<view> (engine.ts). Readers find the storage
 * from the fingerprint they expect, so none reads the keys of another definition.
 *
 *   cdcv:{<deployment>}:v:<storage>:rows       HASH   encoded key → stored row (JSON)
 *   cdcv:{<deployment>}:v:<storage>:idx        ZSET   encoded keys, score 0: key order for pagination
 *   cdcv:{<deployment>}:v:<storage>:ord:<sig>  ZSET   one per ordering declared with indexBy (sig:
 *                                                     'revenue:desc,customerId:asc'), score 0, member
 *                                                     <sort terms>\x00\x00<encoded key> (core/encoding.ts)
 *   cdcv:{<deployment>}:s:<storage>/<operator>:… the state of one operator of a view (join indexes,
 *                                                     group states, min/max candidates, top-N sets):
 *                                                     the layout of each is in its operator
 *                                                     (views/operators/*.ts)
 *
 * The hash tag `{<deployment>}` puts a deployment in one Redis Cluster slot, so one atomic script
 * can update all its views together (DESIGN.md §5, §8).
 */

/** The Redis namespace of a view's rows and operator state, for one definition of it. */
export function storageOf(view: string, fingerprint: string): string {
  return `${view}~${fingerprint.slice(0, 8)}`;
}

export function keyPrefix(deployment: string): string {
  return `cdcv:{${deployment}}`;
}

export const leaseKey = (prefix: string): string => `${prefix}:lease`;
export const checkpointKey = (prefix: string): string => `${prefix}:checkpoint`;
export const busyKey = (prefix: string): string => `${prefix}:busy`;
export const requestsKey = (prefix: string): string => `${prefix}:requests`;
/** The meta field holding an open backfill window (views/backfill.ts). */
export const BACKFILL_WINDOW_FIELD = 'backfill-window';
/** Pattern of every backfill's own row images. */
export const backfillImagesPattern = (prefix: string): string => `${prefix}:img:backfill~*`;
export const fanoutKey = (prefix: string): string => `${prefix}:fanout`;
export const fanoutDoneKey = (prefix: string, id: string): string => `${prefix}:fanout:${id}:done`;
/** The busy value of a view waiting for join fan-outs (a transaction's views hold its part id). */
export const FANOUT_BUSY = 'fanout';
export const partsKey = (prefix: string): string => `${prefix}:parts`;
export const seqKey = (prefix: string): string => `${prefix}:seq`;
export const metaKey = (prefix: string): string => `${prefix}:meta`;
export const deadLetterKey = (prefix: string): string => `${prefix}:dlq`;
/** Changes a reaction gave up on (a stream: the change, the error, the attempts). */
export const reactionDeadLetterKey = (prefix: string, reaction: string): string =>
  `${prefix}:r:${reaction}:dlq`;
/** Where a reaction's group joined its view's changelog (an entry id): kept across rebuilds, as all `:r:` keys. */
export const reactionJoinedKey = (prefix: string, reaction: string): string =>
  `${prefix}:r:${reaction}:joined`;
/** A reaction's outcomes so far (a hash: handled, skipped, retried, dead-lettered, lost), for `status`. */
export const reactionCountsKey = (prefix: string, reaction: string): string =>
  `${prefix}:r:${reaction}:counts`;
/** A reaction's last failure: a hash of error, at (ms), idempotencyKey, attempt. */
export const reactionLastErrorKey = (prefix: string, reaction: string): string =>
  `${prefix}:r:${reaction}:last`;
export const imagesKey = (prefix: string, table: string): string => `${prefix}:img:${table}`;
export const rowsKey = (prefix: string, storage: string): string => `${prefix}:v:${storage}:rows`;
export const indexKey = (prefix: string, storage: string): string => `${prefix}:v:${storage}:idx`;
export const changelogKey = (prefix: string, view: string): string => `${prefix}:log:${view}`;
/** An ordering index of a view (its signature: views/orderings.ts). */
export const orderingKey = (prefix: string, storage: string, signature: string): string =>
  `${prefix}:v:${storage}:ord:${signature}`;
/** Pattern matching every key of one storage's rows, index and orderings (for status and reset). */
export const viewKeyPattern = (prefix: string, storage: string): string => `${prefix}:v:${storage}:*`;
/** The base of an operator's state keys (its id is `<storage>/<operator>`). */
export const operatorStateBase = (prefix: string, operatorId: string): string => `${prefix}:s:${operatorId}`;
/** Pattern matching every key of the state of one storage's operators. */
export const viewStatePattern = (prefix: string, storage: string): string => `${prefix}:s:${storage}/*`;
/** The meta field holding the storages a swap left behind, until they are deleted. */
export const RETIRED_FIELD = 'retired';

/** The same key formats for Lua scripts; `P` is the prefix passed as ARGV. */
export const LUA_KEYS = `
local function checkpointKey() return P .. ':checkpoint' end
local function leaseKey() return P .. ':lease' end
local function metaKey() return P .. ':meta' end
local function busyKey() return P .. ':busy' end
local function seqKey() return P .. ':seq' end
local function deadLetterKey() return P .. ':dlq' end
local function imagesKey(t) return P .. ':img:' .. t end
-- A view's storage: the view and the first 8 hex digits of its definition's fingerprint.
local function storageOf(v, fp) return v .. '~' .. string.sub(fp, 1, 8) end
local function rowsKey(s) return P .. ':v:' .. s .. ':rows' end
local function indexKey(s) return P .. ':v:' .. s .. ':idx' end
local function orderingKey(s, sig) return P .. ':v:' .. s .. ':ord:' .. sig end
local function changelogKey(v) return P .. ':log:' .. v end
`;
