/**
 * An in-memory stand-in for the part of Redis the operators' state backend uses — for unit tests
 * only (integration tests run a real Redis):
 *
 *   sendCommand   what StateStore reads with: HMGET, HGETALL, ZRANGEBYLEX / ZREVRANGEBYLEX (with
 *                 '-' '+' '[x' '(x' bounds and LIMIT), SCAN (every match in one page, cursor '0')
 *   apply         the WriteOps of a step, with the semantics of step 5 of the Lua write step
 *                 (views/store/write-step.ts): hset, hdel, zadd (score 0), zrem, del, xadd (with
 *                 the floor hash field), madd / mrem (a lex set of distinct members plus a hash of
 *                 extra copies)
 *
 * As in Redis, a hash or sorted set left empty no longer exists (SCAN does not find it), every
 * sorted set here has score 0 so its order is the byte order of the members' UTF-8, and touching a
 * key of the wrong type fails (WRONGTYPE).
 */
import type { RedisClient } from '../../views/store/redis.ts';
import { HGETALL_UP_TO_SCRIPT, type WriteOp } from '../../views/store/state-store.ts';
import { StepWrites } from '../../views/store/write-step.ts';

type Entry =
  | { readonly type: 'hash'; readonly map: Map<string, string> }
  | { readonly type: 'zset'; readonly set: Set<string> }
  | { readonly type: 'stream'; readonly entries: [string, string[]][] };

/** Byte order of the UTF-8 encodings: how Redis orders members of equal score. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class MemoryRedis {
  readonly data = new Map<string, Entry>();
  /** Commands answered, by name (how many round trips the store made, roughly). */
  readonly calls = new Map<string, number>();
  private lastMs = 0;
  private seq = 0;

  /** This double as the client type StateStore takes. */
  asClient(): RedisClient {
    return this as unknown as RedisClient;
  }

  async sendCommand(args: readonly string[]): Promise<unknown> {
    const [name, ...rest] = args;
    const command = String(name).toUpperCase();
    this.calls.set(command, (this.calls.get(command) ?? 0) + 1);
    switch (command) {
      case 'HMGET': {
        const [key, ...fields] = rest;
        const map = this.hash(key!, false);
        return fields.map((f) => map?.get(f) ?? null);
      }
      case 'HGETALL': {
        const map = this.hash(rest[0]!, false);
        return map ? [...map].flat() : [];
      }
      case 'ZRANGEBYLEX':
      case 'ZREVRANGEBYLEX': {
        const reverse = command === 'ZREVRANGEBYLEX';
        const [key, first, second, ...options] = rest;
        // ZREVRANGEBYLEX takes max then min.
        const [min, max] = reverse ? [second!, first!] : [first!, second!];
        let offset = 0;
        let count = -1;
        if (options.length > 0) {
          if (options.length !== 3 || options[0]!.toUpperCase() !== 'LIMIT')
            throw new Error(`ERR syntax error in ${command} ${options.join(' ')}`);
          offset = Number(options[1]);
          count = Number(options[2]);
        }
        const members = this.sorted(key!).filter((m) => aboveMin(m, min) && belowMax(m, max));
        if (reverse) members.reverse();
        return count < 0 ? members.slice(offset) : members.slice(offset, offset + count);
      }
      case 'HLEN':
        return this.hash(rest[0]!, false)?.size ?? 0;
      case 'EVALSHA':
        // Scripts are sent again in full (LuaScript falls back to EVAL): the store has one.
        throw new Error('NOSCRIPT No matching script');
      case 'EVAL': {
        // The store's one read script (a hash read whole only when short enough).
        if (rest[0] !== HGETALL_UP_TO_SCRIPT) throw new Error('ERR the memory Redis runs no other script');
        const n = Number(rest[1]);
        const keys = rest.slice(2, 2 + n);
        const limits = rest.slice(2 + n);
        return keys.map((key, i) => {
          const map = this.hash(key, false);
          if ((map?.size ?? 0) > Number(limits[i])) return map!.size;
          return map ? [...map].flat() : [];
        });
      }
      case 'HSCAN': {
        // Sorted fields, `COUNT` at a time from the cursor (an index); like Redis, it may return an
        // element twice: each page after the first repeats the last field of the page before.
        const [key, cursor, ...options] = rest;
        let count = 10;
        for (let i = 0; i < options.length; i += 2)
          if (options[i]!.toUpperCase() === 'COUNT') count = Number(options[i + 1]);
        const fields = [...(this.hash(key!, false) ?? new Map<string, string>())].sort(([a], [b]) =>
          compareUtf8(a, b),
        );
        const from = Number(cursor);
        const page = fields.slice(Math.max(0, from - 1), from + count);
        const next = from + count >= fields.length ? '0' : String(from + count);
        return [next, page.flat()];
      }
      case 'SCAN': {
        const [cursor, ...options] = rest;
        if (cursor !== '0') throw new Error(`ERR invalid cursor ${cursor}`);
        let pattern = '*';
        for (let i = 0; i < options.length; i += 2)
          if (options[i]!.toUpperCase() === 'MATCH') pattern = options[i + 1]!;
        return ['0', [...this.data.keys()].filter((k) => globMatch(pattern, k))];
      }
      default:
        throw new Error(`ERR the memory Redis does not implement ${command}`);
    }
  }

  /** Apply a step's writes as the Lua write step does (its step 5), in order. */
  apply(step: readonly WriteOp[] | StepWrites): void {
    const writes = step instanceof StepWrites ? step.decode() : step;
    for (const w of writes) {
      switch (w.op) {
        case 'hset':
          this.hash(w.key, true)!.set(w.field, w.value);
          break;
        case 'hdel':
          this.hdel(w.key, w.field);
          break;
        case 'zadd':
          this.zset(w.key, true)!.add(w.member);
          break;
        case 'zrem':
          this.zrem(w.key, w.member);
          break;
        case 'del':
          this.data.delete(w.key);
          break;
        case 'xadd': {
          const id = this.nextId();
          const stream = this.stream(w.key);
          stream.push([id, [...w.fields]]);
          // MAXLEN ~ keeps at least maxLength entries; trimming exactly to it is one outcome it allows.
          if (stream.length > w.maxLength) stream.splice(0, stream.length - w.maxLength);
          if (w.floor) this.hash(w.floor.key, true)!.set(w.floor.field, id);
          break;
        }
        case 'madd': {
          // local extra = n - ZADD NX member (1 when added); if extra > 0 then HINCRBY extras member extra
          const set = this.zset(w.key, true)!;
          const added = set.has(w.member) ? 0 : 1;
          set.add(w.member);
          const extra = w.n - added;
          if (extra > 0) this.hincrby(w.extras, w.member, extra);
          break;
        }
        case 'mrem': {
          // extra = HGET extras member or 0; extra > n: HINCRBY -n; else HDEL when extra > 0, ZREM when extra < n
          const extra = Number(this.hash(w.extras, false)?.get(w.member) ?? 0);
          if (extra > w.n) this.hincrby(w.extras, w.member, -w.n);
          else {
            if (extra > 0) this.hdel(w.extras, w.member);
            if (extra < w.n) this.zrem(w.key, w.member);
          }
          break;
        }
      }
    }
  }

  // --- direct reads for assertions (not part of the Redis surface) ----------------------------

  /** A hash's fields, empty when absent. */
  hgetall(key: string): Map<string, string> {
    return new Map(this.hash(key, false) ?? []);
  }

  /** A sorted set's members in lex order, empty when absent. */
  zmembers(key: string): string[] {
    return this.sorted(key);
  }

  /** A stream's entries (id, fields), empty when absent. */
  xrange(key: string): readonly (readonly [string, readonly string[]])[] {
    const e = this.data.get(key);
    return e?.type === 'stream' ? e.entries : [];
  }

  keys(pattern = '*'): string[] {
    return [...this.data.keys()].filter((k) => globMatch(pattern, k));
  }

  // --- internals ------------------------------------------------------------------------------

  private hash(key: string, create: boolean): Map<string, string> | undefined {
    const e = this.data.get(key);
    if (e) {
      if (e.type !== 'hash') throw new Error(`WRONGTYPE ${key} holds a ${e.type}, not a hash`);
      return e.map;
    }
    if (!create) return undefined;
    const map = new Map<string, string>();
    this.data.set(key, { type: 'hash', map });
    return map;
  }

  private zset(key: string, create: boolean): Set<string> | undefined {
    const e = this.data.get(key);
    if (e) {
      if (e.type !== 'zset') throw new Error(`WRONGTYPE ${key} holds a ${e.type}, not a sorted set`);
      return e.set;
    }
    if (!create) return undefined;
    const set = new Set<string>();
    this.data.set(key, { type: 'zset', set });
    return set;
  }

  private stream(key: string): [string, string[]][] {
    const e = this.data.get(key);
    if (e) {
      if (e.type !== 'stream') throw new Error(`WRONGTYPE ${key} holds a ${e.type}, not a stream`);
      return e.entries;
    }
    const entries: [string, string[]][] = [];
    this.data.set(key, { type: 'stream', entries });
    return entries;
  }

  private sorted(key: string): string[] {
    return [...(this.zset(key, false) ?? [])].sort(compareUtf8);
  }

  private hdel(key: string, field: string): void {
    const map = this.hash(key, false);
    if (!map) return;
    map.delete(field);
    if (map.size === 0) this.data.delete(key);
  }

  private zrem(key: string, member: string): void {
    const set = this.zset(key, false);
    if (!set) return;
    set.delete(member);
    if (set.size === 0) this.data.delete(key);
  }

  private hincrby(key: string, field: string, by: number): void {
    const map = this.hash(key, true)!;
    const value = map.get(field);
    if (value !== undefined && !/^-?\d+$/.test(value)) throw new Error('ERR hash value is not an integer');
    // A field incremented to 0 stays (as in Redis): only HDEL removes it.
    map.set(field, String(Number(value ?? 0) + by));
  }

  /** Stream ids as Redis makes them: <ms>-<seq>, increasing. */
  private nextId(): string {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else this.seq++;
    return `${this.lastMs}-${this.seq}`;
  }
}

function aboveMin(member: string, min: string): boolean {
  if (min === '-') return true;
  if (min === '+') return false;
  const c = compareUtf8(member, min.slice(1));
  if (min[0] === '[') return c >= 0;
  if (min[0] === '(') return c > 0;
  throw new Error(`ERR min or max not valid string range item: ${min}`);
}

function belowMax(member: string, max: string): boolean {
  if (max === '+') return true;
  if (max === '-') return false;
  const c = compareUtf8(member, max.slice(1));
  if (max[0] === '[') return c <= 0;
  if (max[0] === '(') return c < 0;
  throw new Error(`ERR min or max not valid string range item: ${max}`);
}

/**
 * Redis's glob (stringmatchlen): * ? [abc] [^a-z] and \\ escapes — by characters where Redis goes
 * by bytes, which differs only for ? and [] against multi-byte characters (the store's patterns
 * are a key prefix and *).
 */
export function globMatch(pattern: string, text: string): boolean {
  const p = [...pattern];
  const t = [...text];
  const match = (pi: number, ti: number): boolean => {
    while (pi < p.length) {
      const c = p[pi]!;
      if (c === '*') {
        while (p[pi + 1] === '*') pi++;
        if (pi + 1 === p.length) return true;
        for (let k = ti; k <= t.length; k++) if (match(pi + 1, k)) return true;
        return false;
      }
      if (ti >= t.length) return false;
      if (c === '?') {
        pi++;
        ti++;
        continue;
      }
      if (c === '[') {
        let i = pi + 1;
        const negate = p[i] === '^';
        if (negate) i++;
        let matched = false;
        while (i < p.length && p[i] !== ']') {
          if (p[i] === '\\' && i + 1 < p.length) {
            if (p[i + 1] === t[ti]) matched = true;
            i += 2;
          } else if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
            let [lo, hi] = [p[i]!.codePointAt(0)!, p[i + 2]!.codePointAt(0)!];
            if (lo > hi) [lo, hi] = [hi, lo];
            const x = t[ti]!.codePointAt(0)!;
            if (x >= lo && x <= hi) matched = true;
            i += 3;
          } else {
            if (p[i] === t[ti]) matched = true;
            i++;
          }
        }
        if (negate) matched = !matched;
        if (!matched) return false;
        pi = i + 1;
        ti++;
        continue;
      }
      if (c === '\\' && pi + 1 < p.length) {
        if (p[pi + 1] !== t[ti]) return false;
        pi += 2;
        ti++;
        continue;
      }
      if (c !== t[ti]) return false;
      pi++;
      ti++;
    }
    return ti === t.length;
  };
  return match(0, 0);
}
