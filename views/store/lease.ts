/**
 * One writer per deployment: a lease in Redis whose value is the writer's fencing token.
 *
 *   acquire ──SET lease <token> NX PX ttl──▶ held ──every ttl/3: renew (compare-and-PEXPIRE)──▶ held
 *      ▲  (taken: wait, poll)                  │ renew finds another value or none
 *      └───────────────────────────────────────┴──▶ lost: the engine stops writing at once
 *
 * The lease alone is not enough (a process paused past its TTL wakes up believing it still holds
 * it), so every write step checks the token inside the same atomic script (write-step.ts), and
 * so does the wipe before a rebuild: a writer that lost its lease can never write, wipe or
 * checkpoint a keyspace another writer owns. The token is `<n>:<owner>`, n from a counter, so
 * logs show who held it and in what order.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { checkpointKey, leaseKey } from './keys.ts';
import { LuaScript, type RedisClient } from './redis.ts';

/**
 * Renew if still ours. Reply: {'ok', step} — the stored step, so a renewal also notices Redis
 * going back in time — or {'gone', holder, step} when the lease is not ours (holder '' and step ''
 * together: the keyspace is empty).
 */
const RENEW = new LuaScript(`
local step = redis.call('HGET', KEYS[2], '~step') or ''
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then return {'gone', holder or '', step} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok', step}
`);
/** Take the lease back if it still holds our token (Redis restored from a dump taken while we held it). */
const RECLAIM = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

export interface LeaseOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly ttlMs?: number;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

export class WriterLease {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly ttlMs: number;
  private readonly options: LeaseOptions;
  /** The fencing token while held. */
  token: string | null = null;
  /** The last token held: still ours if Redis was restored from a dump taken while we held it. */
  private lastToken: string | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(options: LeaseOptions) {
    this.options = options;
    this.ttlMs = options.ttlMs ?? 5000;
  }

  /** Wait until the lease is ours (or `signal` aborts). Logs who holds it while waiting. */
  async acquire(signal: { readonly aborted: () => boolean }): Promise<string | null> {
    const { redis, prefix } = this.options;
    let reported: string | null = null;
    while (!signal.aborted()) {
      if (this.lastToken !== null) {
        const reclaimed = await RECLAIM.run<number>(redis, [leaseKey(prefix)], [this.lastToken, String(this.ttlMs)]);
        if (reclaimed === 1) {
          this.token = this.lastToken;
          this.options.log?.('info', 'holding the writer lease again', { token: this.token });
          return this.token;
        }
      }
      const n = await redis.sendCommand<number>(['INCR', `${leaseKey(prefix)}:n`]);
      const token = `${n}:${this.owner}`;
      const set = await redis.sendCommand<string | null>(['SET', leaseKey(prefix), token, 'NX', 'PX', String(this.ttlMs)]);
      if (set === 'OK') {
        this.token = this.lastToken = token;
        this.options.log?.('info', 'holding the writer lease', { token });
        return token;
      }
      const holder = await redis.sendCommand<string | null>(['GET', leaseKey(prefix)]);
      if (holder !== null && holder !== reported) {
        reported = holder;
        this.options.log?.('info', 'another instance writes this deployment; waiting for its lease (serving reads meanwhile)', {
          holder,
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(1000, this.ttlMs / 4)));
    }
    return null;
  }

  /**
   * Renew every ttl/3 while held. `onRenewed(step)` gets the stored step; `onLost(reason, empty)`
   * is called once if the lease is gone: expired and taken, or Redis lost it (`empty`: the
   * keyspace holds neither lease nor checkpoint).
   */
  keepAlive(onRenewed: (storedStep: string, atSend: number | null) => void, onLost: (reason: string, empty: boolean) => void, expected: () => number | null): void {
    this.stopKeepAlive();
    const { redis, prefix } = this.options;
    const tick = async (): Promise<void> => {
      const token = this.token;
      if (token === null) return;
      // What Redis must hold at least: the step this writer had written when the renewal left.
      const atSend = expected();
      try {
        const [status, a, b] = await RENEW.run<[string, string, string?]>(redis, [leaseKey(prefix), checkpointKey(prefix)], [token, String(this.ttlMs)]);
        if (this.token !== token) return;
        if (status === 'ok') return onRenewed(a, atSend);
        this.token = null;
        this.stopKeepAlive();
        const empty = a === '' && b === '';
        onLost(a === '' ? 'the lease is gone from Redis (it expired, or Redis lost its data)' : `the lease is held by ${a}`, empty);
      } catch {
        // Redis unreachable: the lease may expire; the write step's own check decides.
      }
    };
    this.timer = setInterval(() => void tick(), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  stopKeepAlive(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Give the lease up (a clean stop): the next instance takes over at once instead of after the TTL. */
  async release(): Promise<void> {
    this.stopKeepAlive();
    const token = this.token;
    this.token = this.lastToken = null;
    if (token === null) return;
    await RELEASE.run(this.options.redis, [leaseKey(this.options.prefix)], [token]).catch(() => undefined);
  }
}
