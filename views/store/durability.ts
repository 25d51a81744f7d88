/**
 * When a write step may be acknowledged to the source: only once Redis cannot lose it under the
 * configured persistence (DESIGN.md §6.3). What each mode promises:
 *
 *   mode        Redis setting                          the source is acknowledged …
 *   always      appendonly yes, appendfsync always     right after the step (Redis fsyncs before replying)
 *   waitaof     appendonly yes, Redis ≥ 7.2            after WAITAOF 1 0: the step is fsynced locally
 *   delayed     appendonly yes, everysec, Redis < 7.2  2 s after the step: everysec fsyncs each second,
 *                                                      and Redis delays writes when fsync falls 2 s behind
 *   replicas    durability: { replicas: n }            after WAIT n: n replicas have the step
 *   none        no AOF (RDB or nothing)                right after the step — a Redis restart can lose
 *                                                      acknowledged steps; the writer detects it and
 *                                                      rebuilds the views (views/engine.ts), so the cost
 *                                                      is downtime, never a wrong view
 *
 * `auto` (the default) picks the strongest mode the server's settings allow and warns loudly when
 * that is `none`; `require: true` refuses to start instead.
 */
import type { RedisClient } from './redis.ts';

export const DURABILITY_MODES = ['always', 'waitaof', 'delayed', 'replicas', 'none'] as const;
export type DurabilityMode = (typeof DURABILITY_MODES)[number];

export interface DurabilityOptions {
  /** `auto` (default): the strongest mode Redis allows. */
  readonly mode?: 'auto' | DurabilityMode;
  /** With mode `replicas`: how many replicas must have a step before it is acknowledged. */
  readonly replicas?: number;
  /** Refuse to start when acknowledged steps could be lost (mode would be `none`). */
  readonly require?: boolean;
  /** How long one WAITAOF / WAIT may block (ms). */
  readonly timeoutMs?: number;
}

export interface RedisPersistence {
  readonly version: string;
  readonly appendonly: boolean;
  readonly appendfsync: string | null;
  readonly connectedReplicas: number;
}

export interface ResolvedDurability {
  readonly mode: DurabilityMode;
  /** Why this mode, and (for `none`) what could be lost and how to fix it. */
  readonly explanation: string;
  readonly warning: string | null;
}

/** Pure: the mode for a server's settings and the configured options. */
export function resolveDurability(server: RedisPersistence, options: DurabilityOptions = {}): ResolvedDurability {
  const wanted = options.mode ?? 'auto';
  const hasWaitAof = versionAtLeast(server.version, 7, 2);
  const fix = `Set 'appendonly yes' (with 'appendfsync always', or 'everysec' on Redis 7.2+ for WAITAOF) in redis.conf, or configure replicas.`;
  if (wanted === 'replicas' || (wanted === 'auto' && (options.replicas ?? 0) > 0)) {
    const n = options.replicas ?? 1;
    return { mode: 'replicas', explanation: `acknowledged after WAIT ${n} (${n} replica(s) hold each step)`, warning: null };
  }
  if (wanted === 'none') {
    return { mode: 'none', explanation: 'acknowledged right after each step (durability: none)', warning: null };
  }
  if (!server.appendonly) {
    return {
      mode: 'none',
      explanation: 'Redis runs without an append-only file',
      warning:
        `Redis ${server.version} runs without an append-only file: a Redis restart loses steps already acknowledged to the source. ` +
        `cdc-views detects that and rebuilds every view from a fresh snapshot (downtime, never a wrong view). ${fix}`,
    };
  }
  if (server.appendfsync === 'always' && (wanted === 'auto' || wanted === 'always')) {
    return { mode: 'always', explanation: 'appendfsync always: a step is on disk when Redis replies', warning: null };
  }
  if (hasWaitAof && (wanted === 'auto' || wanted === 'waitaof')) {
    return { mode: 'waitaof', explanation: `acknowledged after WAITAOF 1 0 (appendfsync ${server.appendfsync})`, warning: null };
  }
  if (server.appendfsync === 'everysec' && (wanted === 'auto' || wanted === 'delayed')) {
    return { mode: 'delayed', explanation: 'appendfsync everysec: acknowledged 2 s after each step', warning: null };
  }
  return {
    mode: 'none',
    explanation: `appendfsync ${server.appendfsync} on Redis ${server.version} gives no point at which a step is known to be on disk`,
    warning: `Redis ${server.version} with appendfsync ${server.appendfsync}: acknowledged steps can be lost on a crash; cdc-views detects it and rebuilds. ${fix}`,
  };
}

export function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** Read the server's persistence settings (CONFIG may be disabled on managed Redis: INFO is the fallback). */
export async function readPersistence(redis: RedisClient): Promise<RedisPersistence> {
  const info = await redis.sendCommand<string>(['INFO']);
  const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  let appendfsync: string | null = null;
  let appendonly = field('aof_enabled') === '1';
  try {
    const reply = await redis.sendCommand<string[]>(['CONFIG', 'GET', 'append*']);
    const config: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) config[reply[i]!] = reply[i + 1]!;
    appendfsync = config['appendfsync'] ?? null;
    if (config['appendonly'] !== undefined) appendonly = config['appendonly'] === 'yes';
  } catch {
    // CONFIG renamed or disabled: appendfsync unknown
  }
  return {
    version: field('redis_version') ?? '0',
    appendonly,
    appendfsync,
    connectedReplicas: Number(field('connected_slaves') ?? 0),
  };
}

/**
 * Holds acknowledgements back until the steps they cover are durable. `afterStep` runs on the
 * writer's own connection right after a step (WAITAOF and WAIT wait for that connection's writes).
 */
export class AckGate {
  readonly durability: ResolvedDurability;
  private readonly options: DurabilityOptions;
  private delayed: { at: number; ack: () => Promise<void> }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(durability: ResolvedDurability, options: DurabilityOptions = {}) {
    this.durability = durability;
    this.options = options;
  }

  /** Wait until the step just written on `writer` is durable, then acknowledge (or schedule it). */
  async afterStep(writer: RedisClient, ack: () => Promise<void>): Promise<void> {
    const timeout = String(this.options.timeoutMs ?? 5000);
    switch (this.durability.mode) {
      case 'waitaof': {
        const [local] = await writer.sendCommand<[number, number]>(['WAITAOF', '1', '0', timeout]);
        if (local < 1) throw new Error(`WAITAOF: the step was not fsynced within ${timeout} ms (is appendonly still on?)`);
        return ack();
      }
      case 'replicas': {
        const wanted = this.options.replicas ?? 1;
        const got = await writer.sendCommand<number>(['WAIT', String(wanted), timeout]);
        if (got < wanted) throw new Error(`WAIT: only ${got} of ${wanted} replica(s) acknowledged the step within ${timeout} ms`);
        return ack();
      }
      case 'delayed':
        this.delayed.push({ at: Date.now() + 2000, ack });
        this.timer ??= setInterval(() => void this.flushDelayed(), 250);
        return;
      default:
        return ack();
    }
  }

  private async flushDelayed(): Promise<void> {
    const now = Date.now();
    let last: (() => Promise<void>) | null = null;
    while (this.delayed.length > 0 && this.delayed[0]!.at <= now) last = this.delayed.shift()!.ack;
    // Positions only grow: acknowledging the newest due one covers the older ones.
    if (last) await last().catch(() => undefined);
  }

  /** Forget acknowledgements not yet due (the pipeline restarts from the stored checkpoint anyway). */
  reset(): void {
    this.delayed = [];
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
