/**
 * Live changes for subscriptions, from each view's changelog stream in Redis. No polling of any
 * database: one blocking XREAD per API process tails every view's changelog, decodes each entry
 * once, and hands it to every subscriber of that view (any number of API processes can do this
 * against one Redis; they hold no state of their own).
 *
 *   subscribe ──▶ buffer live entries ──▶ [snapshot pages @ version V] ──▶ catch up XRANGE (since|V, now]
 *                                                                            ──▶ drain buffer (> last sent) ──▶ live
 *
 * A subscriber that falls more than `maxBuffered` events behind is cut off with an error rather
 * than holding memory without bound; it can resume with `since` from its last version.
 */
import { changelogKey } from '../views/store/keys.ts';
import type { RedisClient } from '../views/store/redis.ts';
import { currentVersion, decodeChangelogEntry, readChangelog, readPage, trimmedUpTo, type ViewChange } from '../views/store/read.ts';
import type { CompiledView, Registry } from '../views/registry.ts';
import type { ChangeStreamOptions, SubscriptionEvent } from '../schema/build-schema.ts';
import { PublicError } from '../schema/errors.ts';

type Listener = (change: ViewChange) => void;

/** Order of Redis stream ids 'ms-seq'. */
export function compareVersions(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export interface ChangelogHubOptions {
  readonly registry: Registry;
  readonly prefix: string;
  /** A connection for short commands (pages, XRANGE). */
  readonly redis: RedisClient;
  /** Events a subscriber may lag behind before it is cut off. */
  readonly maxBuffered?: number;
  readonly onError?: (error: unknown) => void;
}

export class ChangelogHub {
  private readonly options: ChangelogHubOptions;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly lastSeen = new Map<string, string>();
  private reader: RedisClient | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  /** Subscribers currently attached, per view (for metrics). */
  readonly active = new Map<string, number>();

  constructor(options: ChangelogHubOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { registry, redis, prefix } = this.options;
    for (const view of registry.views) this.lastSeen.set(view.name, await currentVersion(redis, prefix, view));
    this.reader = redis.duplicate();
    this.reader.on('error', (error: Error) => this.options.onError?.(error));
    await this.reader.connect();
    this.loop = this.tail();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A blocked XREAD returns within its timeout; disconnecting ends it at once.
    this.reader?.destroy();
    await this.loop?.catch(() => undefined);
  }

  private async tail(): Promise<void> {
    const { registry, prefix } = this.options;
    const views = registry.views;
    const keys = views.map((v) => changelogKey(prefix, v.name));
    while (!this.stopped) {
      try {
        const ids = views.map((v) => this.lastSeen.get(v.name) ?? '0-0');
        const reply = await this.reader!.sendCommand<[string, [string, string[]][]][] | null>([
          'XREAD',
          'COUNT',
          '1000',
          'BLOCK',
          '5000',
          'STREAMS',
          ...keys,
          ...ids,
        ]);
        if (!reply) continue;
        for (const [key, entries] of reply) {
          const view = views[keys.indexOf(key)];
          if (!view || entries.length === 0) continue;
          this.lastSeen.set(view.name, entries.at(-1)![0]);
          const listeners = this.listeners.get(view.name);
          if (!listeners?.size) continue;
          for (const entry of entries) {
            const change = decodeChangelogEntry(view, entry);
            for (const listener of listeners) listener(change);
          }
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.onError?.(error);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private listen(view: string, listener: Listener): () => void {
    let set = this.listeners.get(view);
    if (!set) this.listeners.set(view, (set = new Set()));
    set.add(listener);
    this.active.set(view, (this.active.get(view) ?? 0) + 1);
    return () => {
      set.delete(listener);
      this.active.set(view, (this.active.get(view) ?? 1) - 1);
    };
  }

  /** The change stream of one subscription (see the diagram above). */
  async *changes(view: CompiledView, options: ChangeStreamOptions): AsyncGenerator<SubscriptionEvent> {
    const { redis, prefix } = this.options;
    const maxBuffered = this.options.maxBuffered ?? 10_000;
    const buffer: ViewChange[] = [];
    let overflow = false;
    let wake: (() => void) | null = null;
    const unlisten = this.listen(view.name, (change) => {
      if (options.key !== null && change.key !== options.key) return;
      if (buffer.length >= maxBuffered) overflow = true;
      else buffer.push(change);
      wake?.();
      wake = null;
    });
    const matches = (change: { key: string }): boolean => options.key === null || change.key === options.key;
    try {
      let last = options.since;
      if (options.snapshot && last === null) {
        let after: string | null = null;
        let version: string | null = null;
        for (;;) {
          const page = await readPage(redis, prefix, view, after, 1000);
          version ??= page.version;
          for (const { key, row } of page.rows) {
            if (matches({ key })) yield { view: view.name, version, op: 'snapshot', key, row, previous: null };
          }
          if (page.rows.length < 1000) break;
          after = page.rows.at(-1)!.key;
        }
        last = version;
      }
      if (last !== null) {
        if (options.since !== null) {
          // Entries after `since` were trimmed away: resuming would silently skip them.
          const trimmed = await trimmedUpTo(redis, prefix, view);
          if (compareVersions(last, trimmed) < 0) {
            throw new PublicError(
              `Version ${last} of ${view.name} is no longer in its changelog (trimmed up to ${trimmed}); subscribe again with snapshot: true`,
              'VERSION_EXPIRED',
            );
          }
        }
        for (;;) {
          const batch = await readChangelog(redis, prefix, view, last, 1000);
          for (const change of batch) if (matches(change)) yield change;
          if (batch.length === 0) break;
          last = batch.at(-1)!.version;
          if (batch.length < 1000) break;
        }
      }
      for (;;) {
        if (overflow) {
          throw new PublicError(`Subscription to ${view.name} fell more than ${maxBuffered} changes behind; resume with since: ${last ?? '0-0'}`, 'SUBSCRIBER_TOO_SLOW');
        }
        const change = buffer.shift();
        if (!change) {
          if (options.signal?.aborted) return;
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        if (last !== null && compareVersions(change.version, last) <= 0) continue;
        last = change.version;
        yield change;
      }
    } finally {
      unlisten();
    }
  }
}
