/**
 * The operators' state, as the single writer sees it: an in-process cache over Redis that the
 * writer keeps in step with what it writes, and the writes of the step being planned.
 *
 *   operator.needs(…) ──▶ reads the cache lacks ──▶ load(): one pipelined round trip on the
 *                                                    writer's own connection
 *   operator.step(…)  ──▶ synchronous reads of what is loaded; writes go to the cache and to
 *                         the step's packed writes ──▶ takeWrites() ──▶ the atomic write step
 *
 * Reads use the writer's connection on purpose: Redis answers a connection's commands in order,
 * so a read sent while an earlier step is still in flight sees that step applied — the same state
 * the cache already assumes. Only one writer exists (the lease), so what the cache holds stays
 * true until the writer itself changes it. If a step fails, `invalidate()` drops everything: the
 * failed step is retried with the writes it planned, and later steps are planned again.
 *
 * Three shapes of state: hash fields (group states, view rows), whole small hashes (a join key's
 * rows — or, past a bound, only their number: hgetall with `upTo`), and the head of a lex-ordered
 * sorted set (min/max candidates, top-N members).
 */
import { compareBytes } from '../../core/encoding.ts';
import { LuaScript, scanKeys, type RedisClient } from './redis.ts';
import { StepWrites } from './write-step.ts';

export type WriteOp =
  | { readonly op: 'hset'; readonly key: string; readonly field: string; readonly value: string }
  | { readonly op: 'hdel'; readonly key: string; readonly field: string }
  | { readonly op: 'zadd'; readonly key: string; readonly member: string }
  | { readonly op: 'zrem'; readonly key: string; readonly member: string }
  | { readonly op: 'del'; readonly key: string }
  /**
   * A changelog entry (the stream id is assigned by Redis), in a stream capped near `maxLength`;
   * `floor`: a hash field set to the new entry's id (where a view's history starts over).
   */
  | {
      readonly op: 'xadd';
      readonly key: string;
      readonly maxLength: number;
      readonly fields: readonly string[];
      readonly floor?: { readonly key: string; readonly field: string };
    }
  /**
   * n copies of a member entering / leaving a multiset kept as a lex set of distinct members
   * (`key`) and a hash of extra copies (`extras`): a unique value costs one member.
   */
  | {
      readonly op: 'madd' | 'mrem';
      readonly key: string;
      readonly extras: string;
      readonly member: string;
      readonly n: number;
    };

export type Read =
  | { readonly kind: 'hget'; readonly key: string; readonly field: string }
  /**
   * A whole hash; with `upTo`, only when it holds at most that many fields — else only its length
   * is learnt (hlen), in the same round trip: a join key's million rows are not read whole.
   */
  | { readonly kind: 'hgetall'; readonly key: string; readonly upTo?: number }
  /** The keys matching a pattern (SCAN): to clear an operator's state after a TRUNCATE. */
  | { readonly kind: 'keys'; readonly pattern: string }
  /** The first `count` members (lex order) of a sorted set; `fromEnd` for the last ones. */
  | { readonly kind: 'zhead'; readonly key: string; readonly count: number; readonly fromEnd?: boolean };

/** Known part of a hash: fields with their value, or null for "known absent". */
interface HashState {
  readonly fields: Map<string, string | null>;
  /** Every field is known (absent fields are absent). */
  complete: boolean;
  /** When it was last used (the store's clock): the least recently used go first. */
  used: number;
  /** Values parsed as JSON (hgetJson), dropped with the field's next write. */
  parsed?: Map<string, unknown>;
  /** Every field parsed (hgetallJson), dropped with any write to the hash. */
  all?: ReadonlyMap<string, unknown> | undefined;
}

/** Known part of a lex-ordered sorted set: its first members (or all of them). */
interface ZsetState {
  /** Sorted ascending (byte order). */
  members: string[];
  /** How many of the first members are exactly known (the rest of `members`, if any, is too). */
  complete: boolean;
  /** Read from the end (for max): `members` are the last ones, still sorted ascending. */
  fromEnd: boolean;
}

export interface StateStoreOptions {
  /** Entries (hash fields and set members) kept before the least recently used keys are dropped. */
  readonly maxEntries?: number;
}

export class StateStore {
  private readonly redis: RedisClient;
  private readonly maxEntries: number;
  private hashes = new Map<string, HashState>();
  private zsets = new Map<string, ZsetState>();
  /** Keys found per pattern, for the step being planned. */
  private scans = new Map<string, string[]>();
  /** Lengths of hashes too long to read whole (hgetall upTo), for the step being planned. */
  private lengths = new Map<string, number>();
  private entries = 0;
  private clock = 0;
  private writes = new StepWrites();
  /** Bumped by invalidate(): a plan made under an older generation must be made again. */
  generation = 0;

  constructor(redis: RedisClient, options: StateStoreOptions = {}) {
    this.redis = redis;
    this.maxEntries = options.maxEntries ?? 300_000;
  }

  /** Forget everything cached (after a failed step, or a pipeline restart). */
  invalidate(): void {
    this.hashes = new Map();
    this.zsets = new Map();
    this.entries = 0;
    this.writes = new StepWrites();
    this.lengths = new Map();
    this.generation++;
  }

  // --- reads (synchronous, of what is loaded) ------------------------------------------------

  /** A hash field: its value, null when absent, undefined when not loaded. */
  hget(key: string, field: string): string | null | undefined {
    const h = this.hashes.get(key);
    if (!h) return undefined;
    h.used = ++this.clock;
    const v = h.fields.get(field);
    if (v !== undefined) return v;
    return h.complete ? null : undefined;
  }

  /** Every field of a hash, or undefined when not loaded whole. */
  hgetall(key: string): ReadonlyMap<string, string | null> | undefined {
    const h = this.hashes.get(key);
    if (!h?.complete) return undefined;
    h.used = ++this.clock;
    return h.fields;
  }

  /**
   * A hash field holding JSON, parsed once while it stays unchanged: null when absent, undefined
   * when not loaded. The value is shared: read it, never change it.
   */
  hgetJson<T>(key: string, field: string): T | null | undefined {
    const v = this.hget(key, field);
    if (typeof v !== 'string') return v;
    const h = this.hashes.get(key)!;
    const parsed = (h.parsed ??= new Map());
    let value = parsed.get(field) as T | undefined;
    if (value === undefined) {
      parsed.set(field, (value = JSON.parse(v) as T));
      this.entries++; // a parsed value costs memory like an entry: it counts toward the bound
    }
    return value;
  }

  /**
   * Every field of a hash holding JSON, parsed (shared, like hgetJson); undefined when not loaded
   * whole. `parse`: how the hash's values are read (a hash is always read with the same one).
   */
  hgetallJson<T>(key: string, parse: (json: string) => T = JSON.parse): ReadonlyMap<string, T> | undefined {
    const fields = this.hgetall(key);
    if (fields === undefined) return undefined;
    const h = this.hashes.get(key)!;
    if (h.all) return h.all as ReadonlyMap<string, T>;
    const all = new Map<string, T>();
    for (const [field, v] of fields)
      if (v !== null) all.set(field, (h.parsed?.get(field) as T | undefined) ?? parse(v));
    h.all = all;
    this.entries += all.size;
    return all;
  }

  /**
   * The first `count` members of a sorted set (or the last, `fromEnd`), ascending; undefined
   * when not that many are known. Fewer are returned when the set has fewer.
   */
  zhead(key: string, count: number, fromEnd = false): readonly string[] | undefined {
    const z = this.zsets.get(zkey(key, fromEnd)) ?? this.completeSet(key);
    if (!z) return undefined;
    if (z.complete)
      return fromEnd ? z.members.slice(Math.max(0, z.members.length - count)) : z.members.slice(0, count);
    if (z.fromEnd !== fromEnd || z.members.length < count) return undefined;
    return fromEnd ? z.members.slice(z.members.length - count) : z.members.slice(0, count);
  }

  /**
   * How many fields a hash holds: known when it is loaded whole, or when an hgetall with `upTo`
   * found it longer (for this step only); undefined otherwise.
   */
  hlen(key: string): number | undefined {
    return this.hgetall(key)?.size ?? this.lengths.get(key);
  }

  /** Keys matching a pattern, once loaded (for this step only). */
  keys(pattern: string): readonly string[] | undefined {
    return this.scans.get(pattern);
  }

  /** Which of `reads` the cache cannot answer yet. */
  missing(reads: readonly Read[]): Read[] {
    return reads.filter((r) => {
      switch (r.kind) {
        case 'keys':
          return !this.scans.has(r.pattern);
        case 'hget':
          return this.hget(r.key, r.field) === undefined;
        case 'hgetall':
          return this.hgetall(r.key) === undefined && (r.upTo === undefined || !this.lengths.has(r.key));
        case 'zhead':
          return this.zhead(r.key, r.count, r.fromEnd) === undefined;
      }
    });
  }

  /** Load what the cache lacks, in one pipelined round trip. */
  async load(reads: readonly Read[]): Promise<void> {
    const needed = this.missing(reads);
    if (needed.length === 0) return;
    const fields = new Map<string, Set<string>>();
    const whole = new Set<string>();
    const upTo = new Map<string, number>();
    const heads = new Map<string, { key: string; count: number; fromEnd: boolean }>();
    const jobs: Promise<void>[] = [];
    for (const r of needed) {
      if (r.kind === 'hget') {
        let set = fields.get(r.key);
        if (!set) fields.set(r.key, (set = new Set()));
        set.add(r.field);
      } else if (r.kind === 'hgetall' && r.upTo === undefined) whole.add(r.key);
      else if (r.kind === 'hgetall') upTo.set(r.key, Math.min(upTo.get(r.key) ?? Infinity, r.upTo!));
      else if (r.kind === 'keys') {
        jobs.push(this.scan(r.pattern).then((keys) => void this.scans.set(r.pattern, keys)));
      } else {
        // Head and tail of one set are separate reads (a group may lose both its min and its max).
        const id = zkey(r.key, r.fromEnd ?? false);
        const prev = heads.get(id);
        heads.set(id, {
          key: r.key,
          count: Math.max(prev?.count ?? 0, r.count),
          fromEnd: r.fromEnd ?? false,
        });
      }
    }
    for (const [key, set] of fields) {
      if (whole.has(key)) continue;
      const list = [...set];
      jobs.push(
        this.redis.sendCommand<(string | null)[]>(['HMGET', key, ...list]).then((values) => {
          const h = this.hashState(key);
          list.forEach((f, i) => this.setField(h, f, values[i] ?? null));
        }),
      );
    }
    const loadWhole = (key: string, flat: readonly string[]): void => {
      const h = this.hashState(key);
      for (let i = 0; i + 1 < flat.length; i += 2) this.setField(h, flat[i]!, flat[i + 1]!);
      // Fields known absent stay as they are; everything present is now known.
      for (const [f, v] of h.fields) if (v === null) h.fields.delete(f);
      h.complete = true;
    };
    for (const key of whole) {
      jobs.push(this.redis.sendCommand<string[]>(['HGETALL', key]).then((flat) => loadWhole(key, flat)));
    }
    // All bounded reads in one script call: a join step reads one bucket per key it touches.
    const bounded = [...upTo].filter(([key]) => !whole.has(key));
    if (bounded.length > 0) {
      jobs.push(
        HGETALL_UP_TO.run<(number | string[])[]>(
          this.redis,
          bounded.map(([key]) => key),
          bounded.map(([, max]) => String(max)),
        ).then((replies) => {
          bounded.forEach(([key], i) => {
            const reply = replies[i]!;
            if (typeof reply === 'number') this.lengths.set(key, reply);
            else loadWhole(key, reply);
          });
        }),
      );
    }
    for (const { key, count, fromEnd } of heads.values()) {
      // One more than asked tells whether the set holds more.
      const command = fromEnd
        ? ['ZREVRANGEBYLEX', key, '+', '-', 'LIMIT', '0', String(count + 1)]
        : ['ZRANGEBYLEX', key, '-', '+', 'LIMIT', '0', String(count + 1)];
      jobs.push(
        this.redis.sendCommand<string[]>(command).then((members) => {
          const complete = members.length <= count;
          const sorted = fromEnd ? members.slice(0, count).reverse() : members.slice(0, count);
          const before = this.zsets.get(zkey(key, fromEnd));
          this.entries += sorted.length - (before?.members.length ?? 0);
          this.zsets.set(zkey(key, fromEnd), { members: sorted, complete, fromEnd });
        }),
      );
    }
    await Promise.all(jobs);
  }

  // --- writes ---------------------------------------------------------------------------------

  /** Writes planned for the step so far (a view's share: the difference around its operators). */
  get plannedWrites(): number {
    return this.writes.length;
  }

  /**
   * Write a hash field. The cache keeps it only for a hash it already holds: state that is only
   * written (a join side nobody probed yet) stays out of memory; a later read goes to Redis on the
   * writer's connection, after this step, and sees it.
   */
  hset(key: string, field: string, value: string): void {
    const h = this.hashes.get(key);
    if (h) this.setField(this.touch(h), field, value);
    this.writes.hset(key, field, value);
  }

  hdel(key: string, field: string): void {
    const h = this.hashes.get(key);
    if (h) this.setField(this.touch(h), field, null);
    this.writes.hdel(key, field);
  }

  private touch(h: HashState): HashState {
    h.used = ++this.clock;
    return h;
  }

  zadd(key: string, member: string): void {
    this.writes.zadd(key, member);
    for (const fromEnd of [false, true]) this.addKnown(key, fromEnd, member);
  }

  private addKnown(key: string, fromEnd: boolean, member: string): void {
    const z = this.zsets.get(zkey(key, fromEnd));
    if (!z) return;
    const i = lowerBound(z.members, member);
    if (z.members[i] === member) return;
    if (z.complete) {
      z.members.splice(i, 0, member);
      this.entries++;
    } else if (!z.fromEnd && i < z.members.length) {
      // Inside the known head: still exact.
      z.members.splice(i, 0, member);
      this.entries++;
    } else if (z.fromEnd && i > 0) {
      z.members.splice(i, 0, member);
      this.entries++;
    }
    // Beyond the known part: the head is unchanged.
  }

  zrem(key: string, member: string): void {
    this.writes.zrem(key, member);
    for (const fromEnd of [false, true]) {
      const z = this.zsets.get(zkey(key, fromEnd));
      if (!z) continue;
      const i = lowerBound(z.members, member);
      if (z.members[i] === member) {
        z.members.splice(i, 1);
        this.entries--;
        // The known head shrank by one member: a member beyond it may now belong to it.
        if (!z.complete && z.members.length === 0) this.zsets.delete(zkey(key, fromEnd));
      }
    }
  }

  /** A set known whole (from either end) answers for both ends. */
  private completeSet(key: string): ZsetState | undefined {
    for (const fromEnd of [false, true]) {
      const z = this.zsets.get(zkey(key, fromEnd));
      if (z?.complete) return z;
    }
    return undefined;
  }

  /** Add n copies of a member to a multiset (see WriteOp 'madd'). */
  multisetAdd(key: string, extras: string, member: string, n: number): void {
    this.writes.multiset('madd', key, extras, member, n);
    this.forgetMember(key, extras, member);
  }

  /** Remove n copies of a member from a multiset. */
  multisetRemove(key: string, extras: string, member: string, n: number): void {
    this.writes.multiset('mrem', key, extras, member, n);
    this.forgetMember(key, extras, member);
  }

  /** The step changes a multiset's member in ways only Redis resolves: read it again when needed. */
  private forgetMember(key: string, extras: string, member: string): void {
    for (const fromEnd of [false, true]) {
      const z = this.zsets.get(zkey(key, fromEnd));
      if (z) {
        this.entries -= z.members.length;
        this.zsets.delete(zkey(key, fromEnd));
      }
    }
    const h = this.hashes.get(extras);
    if (h?.fields.delete(member)) this.entries--;
    if (h) {
      h.complete = false;
      this.forgetParsed(h, member);
    }
  }

  /** Delete a whole key (state of a truncated input). */
  del(key: string): void {
    this.writes.del(key);
    const h = this.hashes.get(key);
    if (h) this.entries -= StateStore.weight(h) - 1;
    else this.entries++;
    this.hashes.set(key, { fields: new Map(), complete: true, used: ++this.clock });
    for (const fromEnd of [false, true]) {
      const z = this.zsets.get(zkey(key, fromEnd));
      if (z) this.entries -= z.members.length;
      this.zsets.set(zkey(key, fromEnd), { members: [], complete: true, fromEnd });
    }
  }

  /** Append a changelog entry (written in the step, not cached). */
  xadd(
    key: string,
    maxLength: number,
    fields: readonly string[],
    floor?: { key: string; field: string },
  ): void {
    this.writes.xadd(key, maxLength, fields, floor);
  }

  /**
   * The writes planned since the last call, in order (they go into one atomic step). Between
   * steps is also when the cache is trimmed: nothing of it is being read then.
   */
  takeWrites(): StepWrites {
    const writes = this.writes;
    this.writes = new StepWrites();
    this.scans = new Map();
    this.lengths = new Map();
    this.evict();
    return writes;
  }

  private async scan(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of scanKeys(this.redis, pattern)) keys.push(...page);
    return keys;
  }

  // --- internals ------------------------------------------------------------------------------

  private hashState(key: string): HashState {
    let h = this.hashes.get(key);
    if (!h) {
      h = { fields: new Map(), complete: false, used: 0 };
      this.hashes.set(key, h);
      this.entries++; // the key itself: an empty hash known to be empty still costs
    }
    h.used = ++this.clock;
    return h;
  }

  /** A field changes: its parsed value, and the whole hash parsed, no longer hold. */
  private forgetParsed(h: HashState, field: string): void {
    if (h.parsed?.delete(field)) this.entries--;
    if (h.all) {
      this.entries -= h.all.size;
      h.all = undefined;
    }
  }

  /** Entries a cached hash accounts for (fields, the key, parsed values). */
  private static weight(h: HashState): number {
    return h.fields.size + 1 + (h.parsed?.size ?? 0) + (h.all?.size ?? 0);
  }

  private setField(h: HashState, field: string, value: string | null): void {
    this.forgetParsed(h, field);
    const had = h.fields.has(field);
    if (value === null && h.complete) {
      if (had) {
        h.fields.delete(field);
        this.entries--;
      }
      return;
    }
    if (!had) this.entries++;
    h.fields.set(field, value);
  }

  /** Drop the least recently used keys beyond maxEntries, down to 80 % (their state stays in Redis). */
  private evict(): void {
    if (this.entries <= this.maxEntries) return;
    const byUse = [...this.hashes].sort(([, a], [, b]) => a.used - b.used);
    for (const [key, h] of byUse) {
      if (this.entries <= this.maxEntries * 0.8) break;
      this.hashes.delete(key);
      this.entries -= StateStore.weight(h);
    }
    for (const [key, z] of this.zsets) {
      if (this.entries <= this.maxEntries * 0.8) break;
      this.zsets.delete(key);
      this.entries -= z.members.length;
    }
  }

  /** Entries cached (for metrics). */
  get size(): number {
    return this.entries;
  }
}

/** For each hash KEYS[i]: its fields when it holds at most ARGV[i] of them, else its length (a number). */
export const HGETALL_UP_TO_SCRIPT = `
local replies = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('HLEN', key)
  if n > tonumber(ARGV[i]) then replies[i] = n else replies[i] = redis.call('HGETALL', key) end
end
return replies
`;
const HGETALL_UP_TO = new LuaScript(HGETALL_UP_TO_SCRIPT);

/** The cache entry of a sorted set's head (from the start) or tail (from the end). */
function zkey(key: string, fromEnd: boolean): string {
  return fromEnd ? `${key}\x00tail` : key;
}

/** First index whose member is ≥ `member` (byte order of the UTF-8 encoding = code point order). */
function lowerBound(members: readonly string[], member: string): number {
  let lo = 0;
  let hi = members.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareBytes(members[mid]!, member) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
