/**
 * Runs one reaction: a Redis Streams consumer group on its view's changelog.
 *
 *   XAUTOCLAIM (entries a crashed consumer held) ─┐
 *   XREADGROUP > (new entries) ───────────────────┴─▶ in order: decode → when? → handler (timeout,
 *        retries with backoff and jitter) → XACK, or XADD to the reaction's dead letters, then XACK
 *
 * At least once: an entry is acknowledged only after its handler succeeded (or it was parked), so
 * a SIGKILL mid-handler leaves it pending, and the next consumer claims it; the idempotency key
 * (view:key:version) lets the receiver drop the repeat. Up to `concurrency` entries are handled at
 * once, the changes of one key always one after another, in order. Any number of processes share a
 * group: each entry goes to one of them (the order per key holds within one process).
 */
import { changelogKey, reactionCountsKey, reactionDeadLetterKey, reactionLastErrorKey } from '../views/store/keys.ts';
import { decodeChangelogEntry, type ViewChange } from '../views/store/read.ts';
import type { RedisClient } from '../views/store/redis.ts';
import type { CompiledView } from '../views/registry.ts';
import type { ReactionChange, ReactionDef, ReactionKind } from '../views/reactions.ts';
import { groupName } from './groups.ts';

export type ReactionOutcome = 'handled' | 'skipped' | 'retried' | 'dead-lettered' | 'lost';

export interface ReactionRunnerOptions {
  readonly name: string;
  readonly reaction: ReactionDef;
  readonly view: CompiledView;
  readonly prefix: string;
  /** A connection of its own: the group read blocks. */
  readonly redis: RedisClient;
  /** This process's name in the group. */
  readonly consumer: string;
  /** Entries pending longer than this (ms) with another consumer are claimed (it crashed). Default: twice the attempt timeout, at least 5 s. */
  readonly claimIdleMs?: number;
  readonly log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  readonly onOutcome?: (name: string, outcome: ReactionOutcome) => void;
}

type StreamEntry = [id: string, fields: string[]];

export class ReactionRunner {
  private readonly options: ReactionRunnerOptions;
  private stopped = false;
  private loop: Promise<void> | null = null;
  /** Handlers running now, and the last one started per view key (the next of that key waits for it). */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly lastOfKey = new Map<string, Promise<void>>();
  private readonly stream: string;
  private readonly group: string;

  constructor(options: ReactionRunnerOptions) {
    this.options = options;
    this.stream = changelogKey(options.prefix, options.view.name);
    this.group = groupName(options.name);
  }

  async start(): Promise<void> {
    this.loop = this.ensureGroup(false).then(() => this.run());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // The blocked read returns within its timeout; closing the connection ends it at once.
    this.options.redis.destroy();
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Wait for the reaction's group: the process writing the views creates it once the view is live
   * (reactions/groups.ts), and again where the rebuilt history starts after a rebuild.
   */
  private async ensureGroup(afterRebuild: boolean): Promise<void> {
    const { redis, view } = this.options;
    for (let waited = 0; !this.stopped; waited += 250) {
      const groups = await redis.sendCommand<unknown[][]>(['XINFO', 'GROUPS', this.stream]).catch(() => [] as unknown[][]);
      if (groups.some((g) => g[1] === this.group)) break;
      if (waited === 30_000) this.options.log('warn', 'reaction waits for its group: is a process writing the views (start, or start --ingest-only) running?', { reaction: this.options.name, view: view.name });
      await new Promise((r) => setTimeout(r, 250));
    }
    this.options.log('info', afterRebuild ? 'reaction rejoined its view’s changelog after a rebuild' : 'reaction joined its view’s changelog', { reaction: this.options.name, view: view.name });
  }

  private async run(): Promise<void> {
    const { redis, consumer, reaction } = this.options;
    const claimIdleMs = this.options.claimIdleMs ?? Math.max(5_000, 2 * reaction.timeoutMs);
    let lastClaim = 0;
    while (!this.stopped) {
      try {
        if (Date.now() - lastClaim >= Math.min(claimIdleMs, 5_000)) {
          lastClaim = Date.now();
          // [next cursor, claimed entries, ids deleted before they were handled (trimmed)]
          const [, claimed, deleted] = await redis.sendCommand<[string, StreamEntry[], string[]]>(['XAUTOCLAIM', this.stream, this.group, consumer, String(claimIdleMs), '0-0', 'COUNT', '100']);
          for (const id of deleted ?? []) await this.lost(id);
          for (const entry of claimed) await this.dispatch(entry);
          if (claimed.length > 0) continue;
        }
        const reply = await redis.sendCommand<[string, StreamEntry[]][] | null>(['XREADGROUP', 'GROUP', this.group, consumer, 'COUNT', '100', 'BLOCK', '1000', 'STREAMS', this.stream, '>']);
        for (const [, entries] of reply ?? []) for (const entry of entries) await this.dispatch(entry);
      } catch (error) {
        if (this.stopped) return;
        // The changelog (and its groups) is recreated by a rebuild: join again where its history starts.
        if (error instanceof Error && (error.message.startsWith('NOGROUP') || error.message.startsWith('UNBLOCKED'))) {
          this.options.log('warn', 'the view was rebuilt: the reaction continues with the changes after the rebuild', { reaction: this.options.name });
          await this.ensureGroup(true).catch(() => undefined);
          continue;
        }
        this.options.log('warn', 'reaction read failed; retrying', { reaction: this.options.name, err: error });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /**
   * Starts handling an entry once fewer than `concurrency` are in flight, after the entry before it
   * of the same key (unless `orderedByKey` is off): keys run side by side, each key's changes in order.
   */
  private async dispatch(entry: StreamEntry): Promise<void> {
    const change = decodeChangelogEntry(this.options.view, entry);
    while (this.inFlight.size >= this.options.reaction.concurrency) await Promise.race(this.inFlight);
    const before = (this.options.reaction.orderedByKey && this.lastOfKey.get(change.key)) || Promise.resolve();
    const run: Promise<void> = before
      .then(() => this.handle(entry[0], change))
      .catch((error: unknown) => this.options.log('error', 'reaction failed to handle a change', { reaction: this.options.name, err: error }))
      .finally(() => {
        this.inFlight.delete(run);
        if (this.lastOfKey.get(change.key) === run) this.lastOfKey.delete(change.key);
      });
    this.inFlight.add(run);
    this.lastOfKey.set(change.key, run);
  }

  private async handle(id: string, change: ViewChange): Promise<void> {
    const { reaction, view, name } = this.options;
    const seen = asReactionChange(view, change);
    if (!seen || !reaction.selects(seen)) {
      await this.ack(id);
      this.outcome('skipped');
      return;
    }
    const idempotencyKey = idempotencyKeyOf(view, seen);
    let lastError: unknown = null;
    for (let attempt = 1; attempt <= reaction.retries + 1 && !this.stopped; attempt++) {
      if (attempt > 1) {
        this.outcome('retried');
        const wait = reaction.backoffMs * 2 ** (attempt - 2);
        await new Promise((r) => setTimeout(r, wait / 2 + Math.random() * wait));
      }
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          reaction.handler(seen, { idempotencyKey, signal: controller.signal, attempt, log: (message, f) => this.options.log('info', message, { reaction: name, ...f }) }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              controller.abort(new Error(`timed out after ${reaction.timeoutMs} ms`));
              reject(new Error(`the handler timed out after ${reaction.timeoutMs} ms`));
            }, reaction.timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        await this.ack(id);
        this.outcome('handled');
        return;
      } catch (error) {
        clearTimeout(timer);
        lastError = error;
        this.options.log('warn', 'reaction handler failed', { reaction: name, attempt, idempotencyKey, err: error });
        await this.options.redis
          .sendCommand(['HSET', reactionLastErrorKey(this.options.prefix, name), 'error', error instanceof Error ? error.message : String(error), 'at', String(Date.now()), 'idempotencyKey', idempotencyKey, 'attempt', String(attempt)])
          .catch(() => undefined);
      }
    }
    if (this.stopped) return; // left pending: handled again after the restart
    await this.options.redis.sendCommand([
      'XADD',
      reactionDeadLetterKey(this.options.prefix, name),
      'MAXLEN',
      '~',
      '100000',
      '*',
      'error',
      lastError instanceof Error ? lastError.message : String(lastError),
      'attempts',
      String(reaction.retries + 1),
      'idempotencyKey',
      idempotencyKey,
      'change',
      JSON.stringify(seen),
    ]);
    await this.ack(id);
    this.outcome('dead-lettered');
    this.options.log('error', 'reaction gave up on a change: parked in its dead letters', { reaction: name, idempotencyKey, err: lastError });
    try {
      await reaction.onGiveUp?.(seen, lastError);
    } catch (error) {
      this.options.log('error', 'reaction onGiveUp failed', { reaction: name, idempotencyKey, err: error });
    }
  }

  /** Counted in /metrics (this process) and in Redis (every process: `status`). */
  private outcome(outcome: ReactionOutcome): void {
    this.options.onOutcome?.(this.options.name, outcome);
    void this.options.redis.sendCommand(['HINCRBY', reactionCountsKey(this.options.prefix, this.options.name), outcome, '1']).catch(() => undefined);
  }

  /** An entry trimmed from the changelog before it was handled: said loudly, never silently skipped. */
  private async lost(id: string): Promise<void> {
    const { name } = this.options;
    await this.options.redis.sendCommand(['XADD', reactionDeadLetterKey(this.options.prefix, name), 'MAXLEN', '~', '100000', '*', 'error', 'trimmed from the changelog before it was handled', 'entry', id]);
    this.outcome('lost');
    this.options.log('error', 'a change was trimmed from the changelog before the reaction handled it (raise redis.changelogMaxLength)', { reaction: name, entry: id });
  }

  private async ack(id: string): Promise<void> {
    await this.options.redis.sendCommand(['XACK', this.stream, this.group, id]);
  }
}

/**
 * Runs a reaction's handler again on each change in its dead letters (with one retry policy of its
 * own); a change that goes through is removed from them, one that fails again stays.
 */
export async function replayDeadLetters(
  redis: RedisClient,
  prefix: string,
  name: string,
  reaction: ReactionDef,
  log: (message: string) => void,
): Promise<{ replayed: number; failed: number }> {
  const key = reactionDeadLetterKey(prefix, name);
  let replayed = 0;
  let failed = 0;
  for (const [id, fields] of await redis.sendCommand<StreamEntry[]>(['XRANGE', key, '-', '+'])) {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    if (!f['change']) continue; // a change trimmed before it was handled: nothing to run it on
    const change = JSON.parse(f['change']) as ReactionChange<Record<string, unknown>>;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${reaction.timeoutMs} ms`)), reaction.timeoutMs);
    try {
      await reaction.handler(change, { idempotencyKey: f['idempotencyKey'] ?? '', signal: controller.signal, attempt: Number(f['attempts'] ?? 0) + 1, log });
      await redis.sendCommand(['XDEL', key, id]);
      replayed++;
    } catch (error) {
      failed++;
      log(`${f['idempotencyKey']}: failed again: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return { replayed, failed };
}

/** view:key values:version, printable (it travels in HTTP headers): URI-encoded key values, comma-separated. */
export function idempotencyKeyOf(view: CompiledView, change: ReactionChange<Record<string, unknown>>): string {
  const image = change.row ?? change.previous ?? {};
  const key = view.keyFields.map((f) => encodeURIComponent(String(image[f.name] ?? null))).join(',');
  return `${view.name}:${key}:${change.version}`;
}

/** A changelog entry as a reaction sees it (a reset is not a change of a row: it is not handed out). */
export function asReactionChange(view: CompiledView, change: ViewChange): ReactionChange<Record<string, unknown>> | null {
  if (change.op === 'reset') return null;
  const kind: ReactionKind = change.op === 'insert' ? 'entered' : change.op === 'delete' ? 'left' : 'changed';
  return { view: view.name, kind, row: change.row, previous: change.previous, version: change.version };
}
