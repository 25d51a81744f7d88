/**
 * Live changes for subscriptions, from each view's changelog stream in Redis. No polling of any
 * database: one blocking XREAD per API process tails the changelog of every view someone subscribes
 * to, decodes each entry once, and hands it to every subscriber of that view (any number of API processes can do this
 * against one Redis; they hold no state of their own).
 *
 *   subscribe ──▶ buffer live entries ──▶ [snapshot pages @ version V] ──▶ catch up XRANGE (since|V, now]
 *                                                                            ──▶ drain buffer (> last sent) ──▶ live
 *                      ▲                                                                                        │
 *                      └──── RESET (reason) ◀── the view was rebuilt, stopped, lost its keyspace, or its ◀──────┘
 *                            changelog was trimmed past what this subscriber had; a `since` older than
 *                            the view's history gets the same
 *
 * After a RESET the subscriber gets a fresh snapshot (once the view is servable again) and every
 * change after it: a client that drops its rows on RESET is never left with rows deleted meanwhile.
 * A subscriber that falls more than `maxBuffered` events behind is cut off with an error rather
 * than holding memory without bound; it can resume with `since` from its last version.
 */
import { changelogKey, metaKey } from '../views/store/keys.ts';
import type { RedisClient } from '../views/store/redis.ts';
import { decodeChangelogEntry, readChangelog, readChangelogEntry, readPage, trimmedUpTo, type ViewChange } from '../views/store/read.ts';
import { toRecord, type ViewStatus } from '../views/store/state.ts';
import type { CompiledView, Registry } from '../views/registry.ts';
import type { ChangeStreamOptions, SubscriptionEvent } from '../schema/build-schema.ts';
import { PublicError } from '../schema/errors.ts';
import { visibleChange, type ViewAccess } from '../schema/permissions.ts';

/** A change (a 'reset' entry among them), or word from the hub that the view stopped being servable or lost changes. */
type HubEvent =
  | ViewChange
  | { readonly op: 'reset'; readonly reason: string; readonly version: string; readonly synthetic: true }
  /** A transaction ended with changes this subscriber does not see: the change it holds back is its last. */
  | { readonly op: 'end'; readonly version: string };
type Listener = (event: HubEvent) => void;

/** Subscribers of one view that see the same rows. */
interface Route {
  readonly access: ViewAccess;
  readonly listeners: Set<Listener>;
}

/** Word that a transaction ended with a change a subscriber does not see. */
function endOf(change: ViewChange): HubEvent {
  return { op: 'end', version: change.version };
}

/** Order of Redis stream ids 'ms-seq'. */
export function compareVersions(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** node-redis errors of a connection that is down for a moment (reconnecting). */
const STORE_DOWN = new Set(['ClientOfflineError', 'ClientClosedError', 'SocketClosedUnexpectedlyError', 'ConnectionTimeoutError']);

/**
 * A read a subscription depends on, retried while Redis is unreachable (a restart, a network blip):
 * the subscriber waits instead of being cut off; after `patienceMs` it gets a clear error.
 */
async function whileStoreDown<T>(read: () => Promise<T>, signal: AbortSignal | undefined, patienceMs = 30_000): Promise<T> {
  const deadline = Date.now() + patienceMs;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await read();
    } catch (error) {
      const down = error instanceof Error && (STORE_DOWN.has(error.constructor.name) || STORE_DOWN.has(error.name));
      if (!down || signal?.aborted) throw error;
      if (Date.now() > deadline) throw new PublicError('The store of the views (Redis) has been unreachable for too long; subscribe again later', 'STORE_UNAVAILABLE');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Whether `next` does not directly follow entry number `last` (0: unknown, no check). A reset starts over anyway. */
function isGap(last: number, next: ViewChange): boolean {
  return last > 0 && next.seq > 0 && next.seq !== last + 1 && next.op !== 'reset';
}

/** A version as a client may send it: a Redis stream id, bounded in length. */
export function parseVersion(text: string, what = 'since'): string {
  if (text.length > 41 || !/^\d{1,20}-\d{1,20}$/.test(text)) {
    throw new PublicError(`Expected ${what} to be a version like '1733000000000-0' (from a page or a change), but found '${text.slice(0, 41)}${text.length > 41 ? '…' : ''}'`);
  }
  return text;
}

export interface ChangelogHubOptions {
  readonly registry: Registry;
  readonly prefix: string;
  /** A connection for short commands (pages, XRANGE); never the writer's. */
  readonly redis: RedisClient;
  /** Events a subscriber may lag behind before it is cut off. */
  readonly maxBuffered?: number;
  /** How long one blocking read waits before the views' status is checked again (ms). */
  readonly blockMs?: number;
  readonly onError?: (error: unknown) => void;
}

interface Availability {
  readonly servable: boolean;
  /** The view's status in Redis ('building' also when it is missing or of another definition). */
  readonly state: 'live' | 'building' | 'stopped';
  /** Why not, when not servable. */
  readonly reason: string;
  /** The version the view's current history starts at. */
  readonly floor: string;
}

const READ_COUNT = 1000;

export class ChangelogHub {
  private readonly options: ChangelogHubOptions;
  /** Per view, the subscribers grouped by route (the rows they may see): a change is judged once per route. */
  private readonly routes = new Map<string, Map<string, Route>>();
  private readonly lastSeen = new Map<string, string>();
  /** Number of the last entry read per view: the next must be one more, or changes were trimmed unread. */
  private readonly lastSeq = new Map<string, number>();
  private readonly availability = new Map<string, Availability>();
  private readonly availabilityWaiters = new Set<() => void>();
  private reader: RedisClient | null = null;
  /** When the views' statuses were last read from Redis. */
  private refreshedAt = 0;
  private readerId: number | null = null;
  /** Views whose changelog is read: those with listeners (a view nobody subscribes to costs nothing). */
  private readonly tailed = new Set<string>();
  private wakeIdle: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  /** Subscribers currently attached, per view (for metrics). */
  readonly active = new Map<string, number>();

  constructor(options: ChangelogHubOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    await this.refreshAvailability();
    this.reader = this.options.redis.duplicate();
    this.reader.on('error', (error: Error) => this.options.onError?.(error));
    await this.reader.connect();
    this.readerId = await this.reader.sendCommand<number>(['CLIENT', 'ID']);
    this.loop = this.tail();
  }

  /**
   * Start tailing a view's changelog from its newest entry (its first listener). Called before the
   * subscriber reads its snapshot and catch-up, which therefore cover everything up to here.
   */
  private async follow(view: CompiledView): Promise<void> {
    if (this.tailed.has(view.name)) return;
    const { redis, prefix } = this.options;
    const last = await redis.sendCommand<[string, string[]][]>(['XREVRANGE', changelogKey(prefix, view.name), '+', '-', 'COUNT', '1']);
    if (this.tailed.has(view.name) || !this.routes.get(view.name)?.size) return;
    this.lastSeen.set(view.name, last[0]?.[0] ?? '0-0');
    this.lastSeq.set(view.name, last[0] ? decodeChangelogEntry(view, last[0]).seq : 0);
    this.tailed.add(view.name);
    await this.interruptRead();
  }

  /** The set of tailed views changed: end the blocked XREAD so the next one reads the new set. */
  private async interruptRead(): Promise<void> {
    this.wakeIdle?.();
    if (this.readerId === null) return;
    await this.options.redis.sendCommand(['CLIENT', 'UNBLOCK', String(this.readerId)]).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A blocked XREAD returns within its timeout; disconnecting ends it at once.
    this.reader?.destroy();
    await this.loop?.catch(() => undefined);
    for (const wake of this.availabilityWaiters) wake();
  }

  /** Whether a view can be served now, as the last check saw it. */
  servable(view: string): Availability {
    return this.availability.get(view) ?? { servable: false, state: 'building', reason: `View ${view} has no state in Redis yet`, floor: '0-0' };
  }

  /** Read every view's status, fingerprint and floor; tell subscribers of views that stopped being servable. */
  /**
   * Whether the views can be served, as Redis says (an API-only instance has no engine to ask):
   * every view live and built by this definition, and Redis answering.
   */
  health(): { ready: boolean; problems: string[]; views: Map<string, { state: 'live' | 'building' | 'stopped'; reason?: string }> } {
    const problems: string[] = [];
    const views = new Map<string, { state: 'live' | 'building' | 'stopped'; reason?: string }>();
    for (const view of this.options.registry.views) {
      const a = this.availability.get(view.name);
      if (a?.servable) views.set(view.name, { state: 'live' });
      else {
        const reason = a?.reason ?? `View ${view.name} has not been read from Redis yet`;
        views.set(view.name, { state: a?.state ?? 'building', reason });
        problems.push(reason);
      }
    }
    const staleMs = Date.now() - this.refreshedAt;
    if (staleMs > 5_000) problems.push(`the views' statuses were last read from Redis ${Math.round(staleMs / 1000)} s ago (is Redis reachable?)`);
    return { ready: problems.length === 0, problems, views };
  }

  private async refreshAvailability(): Promise<void> {
    const { registry, redis, prefix } = this.options;
    const fields = registry.views.flatMap((v) => [`status:${v.name}`, `fp:${v.name}`, `floor:${v.name}`]);
    const values = await redis.sendCommand<(string | null)[]>(['HMGET', metaKey(prefix), ...fields]);
    this.refreshedAt = Date.now();
    registry.views.forEach((view, i) => {
      const [status, fp, floor] = [values[3 * i], values[3 * i + 1], values[3 * i + 2]];
      const parsed = status ? (JSON.parse(status) as ViewStatus) : null;
      let reason = '';
      if (!parsed) reason = `View ${view.name} has no state in Redis (being built, or Redis lost it)`;
      else if (fp !== view.fingerprint) reason = `View ${view.name} in Redis was built from another definition (another version of the service writes it)`;
      else if (parsed.state === 'building') reason = `View ${view.name} is being built${parsed.reason ? `: ${parsed.reason}` : ''}`;
      else if (parsed.state === 'stopped') reason = `View ${view.name} is stopped${parsed.reason ? `: ${parsed.reason}` : ''}`;
      const state = reason === '' ? 'live' : parsed?.state === 'stopped' ? 'stopped' : 'building';
      const next: Availability = { servable: reason === '', state, reason, floor: floor ?? '0-0' };
      const before = this.availability.get(view.name);
      this.availability.set(view.name, next);
      if (before?.servable && !next.servable) this.broadcast(view.name, { op: 'reset', reason, version: before.floor, synthetic: true });
    });
    if (this.availabilityWaiters.size > 0) for (const wake of [...this.availabilityWaiters]) wake();
  }

  private broadcast(view: string, event: HubEvent): void {
    for (const route of this.routes.get(view)?.values() ?? []) {
      const seen = event.op === 'end' || 'synthetic' in event ? event : (visibleChange(route.access, event) ?? (event.end ? endOf(event) : null));
      if (seen) for (const listener of route.listeners) listener(seen);
    }
  }

  private async tail(): Promise<void> {
    const { registry, prefix } = this.options;
    const byName = new Map(registry.views.map((v) => [v.name, v]));
    let lastCheck = Date.now();
    while (!this.stopped) {
      try {
        const views = [...this.tailed].map((name) => byName.get(name)!);
        const keys = views.map((v) => changelogKey(prefix, v.name));
        const blockMs = this.options.blockMs ?? 1000;
        const reply =
          views.length === 0
            ? await this.idle(Math.min(blockMs, 250))
            : await this.reader!.sendCommand<[string, [string, string[]][]][] | null>([
                'XREAD',
                'COUNT',
                String(READ_COUNT),
                'BLOCK',
                String(blockMs),
                'STREAMS',
                ...keys,
                ...views.map((v) => this.lastSeen.get(v.name) ?? '0-0'),
              ]);
        let reset = false;
        for (const [key, entries] of reply ?? []) {
          const view = views[keys.indexOf(key)];
          // A view whose last listener left while the read was blocked: its position is dropped.
          if (!view || entries.length === 0 || !this.tailed.has(view.name)) continue;
          const before = this.lastSeen.get(view.name) ?? '0-0';
          this.lastSeen.set(view.name, entries.at(-1)![0]);
          const decoded = entries.map((entry) => decodeChangelogEntry(view, entry));
          // Entries are numbered without gaps: a jump means the stream was trimmed past what was read.
          if (isGap(this.lastSeq.get(view.name) ?? 0, decoded[0]!)) {
            this.broadcast(view.name, {
              op: 'reset',
              reason: `changes after ${before} were trimmed from the changelog before they were delivered`,
              version: decoded[0]!.version,
              synthetic: true,
            });
          }
          this.lastSeq.set(view.name, decoded.at(-1)!.seq);
          // A view going live writes a 'reset' entry: its status changed, read it now.
          reset ||= entries.some(([, fields]) => fields[1] === 'reset');
          for (const change of decoded) this.broadcast(view.name, change);
        }
        if (!reply || reset || Date.now() - lastCheck >= 250) {
          lastCheck = Date.now();
          await this.refreshAvailability();
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.onError?.(error);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Nothing to tail: wait a little (or until a view is followed), then look at the statuses again. */
  private async idle(ms: number): Promise<null> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeIdle = null;
    return null;
  }

  private async listen(view: CompiledView, access: ViewAccess, listener: Listener): Promise<() => void> {
    let routes = this.routes.get(view.name);
    if (!routes) this.routes.set(view.name, (routes = new Map()));
    let route = routes.get(access.route);
    if (!route) routes.set(access.route, (route = { access, listeners: new Set() }));
    route.listeners.add(listener);
    this.active.set(view.name, (this.active.get(view.name) ?? 0) + 1);
    const unlisten = (): void => {
      route.listeners.delete(listener);
      if (route.listeners.size === 0) routes.delete(access.route);
      this.active.set(view.name, (this.active.get(view.name) ?? 1) - 1);
      if (routes.size === 0) this.tailed.delete(view.name);
    };
    try {
      await this.follow(view);
    } catch (error) {
      unlisten();
      throw error;
    }
    return unlisten;
  }

  /** Wait until a view is servable (or the subscription ends). */
  private async untilServable(view: string, signal: AbortSignal | undefined): Promise<boolean> {
    while (!this.servable(view).servable) {
      if (this.stopped || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.availabilityWaiters.delete(wake);
          resolve();
        };
        this.availabilityWaiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
    return true;
  }

  /** The change stream of one subscription (see the diagram above). */
  async *changes(view: CompiledView, options: ChangeStreamOptions): AsyncGenerator<SubscriptionEvent> {
    const { redis, prefix } = this.options;
    const maxBuffered = this.options.maxBuffered ?? 10_000;
    const buffer: HubEvent[] = [];
    let overflow = false;
    let wake: (() => void) | null = null;
    const unlisten = await whileStoreDown(
      () =>
        this.listen(view, options.access, (received) => {
          let event = received;
          if (event.op !== 'reset' && event.op !== 'end' && options.key !== null && event.key !== options.key) {
            if (!event.end) return;
            event = endOf(event);
          }
          if (buffer.length >= maxBuffered) overflow = true;
          else buffer.push(event);
          wake?.();
          wake = null;
        }),
      options.signal,
    );
    const matches = (change: { key: string }): boolean => options.key === null || change.key === options.key;
    const reset = (reason: string, version: string): SubscriptionEvent => ({ view: view.name, version, op: 'reset', key: '', row: null, previous: null, reason, seq: 0 });
    // The last change seen is held back until the next one or the end of its transaction, so the
    // one that ends a transaction can say so (transactionEnd) whatever this subscriber filters out.
    let held: SubscriptionEvent | null = null;
    const pass = (event: SubscriptionEvent | null, end: boolean): SubscriptionEvent[] => {
      const ready: SubscriptionEvent[] = [];
      if (event) {
        if (held) ready.push(held);
        held = event;
      }
      if (end && held) {
        ready.push({ ...held, transactionEnd: true });
        held = null;
      }
      return ready;
    };
    const gap = (version: string): SubscriptionEvent =>
      reset(`changes after version ${version} were trimmed from the changelog before this subscription read them; a fresh snapshot follows`, version);
    try {
      let last = options.since === null ? null : parseVersion(options.since);
      /** Number of the last changelog entry this subscription has (0: unknown). */
      let lastSeq = 0;
      let snapshot = options.snapshot && last === null;
      await whileStoreDown(() => this.refreshAvailability(), options.signal);
      const availability = this.servable(view.name);
      if (!availability.servable) {
        yield reset(availability.reason, availability.floor);
        snapshot = true;
      } else if (last !== null) {
        const current = await whileStoreDown(() => redis.sendCommand<[string, string[]][]>(['XREVRANGE', changelogKey(prefix, view.name), '+', '-', 'COUNT', '1']), options.signal);
        const newest = current[0]?.[0] ?? '0-0';
        if (compareVersions(last, newest) > 0) {
          throw new PublicError(`Version ${last} of ${view.name} is ahead of its newest version ${newest}; resume from a version this service gave you`, 'VERSION_AHEAD');
        }
        const trimmed = await whileStoreDown(() => trimmedUpTo(redis, prefix, view), options.signal);
        if (compareVersions(last, availability.floor) < 0) {
          yield reset(`version ${last} is older than the view's current history (it was rebuilt at ${availability.floor}); a fresh snapshot follows`, availability.floor);
          snapshot = true;
        } else if (compareVersions(last, trimmed) < 0) {
          yield reset(`version ${last} is no longer in the changelog (trimmed up to ${trimmed}); a fresh snapshot follows`, trimmed);
          snapshot = true;
        } else if (last !== '0-0') {
          const entry = await whileStoreDown(() => readChangelogEntry(redis, prefix, view, last!), options.signal);
          if (entry) lastSeq = entry.seq;
          else {
            yield reset(`version ${last} is not in the changelog of ${view.name}; a fresh snapshot follows`, availability.floor);
            snapshot = true;
          }
        }
      }
      for (;;) {
        if (snapshot) {
          if (!(await this.untilServable(view.name, options.signal))) return;
          // Entries buffered so far belong to the history the snapshot replaces.
          buffer.length = 0;
          let after: string | null = null;
          let version: string | null = null;
          try {
            for (;;) {
              const page = await whileStoreDown(() => readPage(redis, prefix, view, after, 1000, { filter: options.access.filter }), options.signal);
              if (version === null) {
                version = page.version;
                lastSeq = page.seq;
              }
              for (const { key, row } of page.rows) {
                if (matches({ key })) yield* pass({ view: view.name, version, op: 'snapshot', key, row, previous: null, seq: lastSeq }, false);
              }
              if (page.rows.length < 1000 && page.scannedTo === null) break;
              after = page.rows.length < 1000 ? page.scannedTo : page.rows.at(-1)!.key;
            }
          } catch (error) {
            // The view stopped being servable while paging: start over once it is again.
            if (!(error instanceof Error && error.name === 'ViewUnavailableError')) throw error;
            held = null;
            yield reset(error.message, version ?? '0-0');
            continue;
          }
          yield* pass(null, true);
          last = version;
          snapshot = false;
        }
        if (last !== null) {
          for (;;) {
            const from: string = last;
            const batch: ViewChange[] = await whileStoreDown(() => readChangelog(redis, prefix, view, from, 1000), options.signal);
            for (const change of batch) {
              if (isGap(lastSeq, change)) {
                yield* pass(null, true);
                yield gap(last);
                snapshot = true;
                break;
              }
              last = change.version;
              lastSeq = change.seq;
              if (change.op === 'reset') {
                yield* pass(null, true);
                yield reset(change.reason ?? 'the view starts over', change.version);
                snapshot = true;
                break;
              }
              const seen = visibleChange(options.access, change);
              yield* pass(seen && matches(seen) ? seen : null, change.end === true);
            }
            if (snapshot || batch.length < 1000) break;
          }
          // Caught up: steps are written whole, so the history read ends at a transaction's end.
          yield* pass(null, true);
        }
        while (!snapshot) {
          if (overflow) {
            throw new PublicError(`Subscription to ${view.name} fell more than ${maxBuffered} changes behind; resume with since: ${last ?? '0-0'}`, 'SUBSCRIBER_TOO_SLOW');
          }
          const event = buffer.shift();
          if (!event) {
            if (options.signal?.aborted || this.stopped) return;
            // Woken by the next event for it, or by the client going away (released at once).
            await new Promise<void>((r) => {
              wake = r;
              options.signal?.addEventListener('abort', () => r(), { once: true });
            });
            continue;
          }
          if ('synthetic' in event) {
            yield* pass(null, true);
            yield reset(event.reason, event.version);
            snapshot = true;
            break;
          }
          // Live events come from the hub, which reads every entry and reports gaps itself
          // (a keyed subscription sees only some entries, so their numbers jump by design).
          if (last !== null && compareVersions(event.version, last) <= 0) continue;
          last = event.version;
          if (event.op === 'end') {
            yield* pass(null, true);
            continue;
          }
          lastSeq = event.seq;
          if (event.op === 'reset') {
            yield* pass(null, true);
            yield reset(event.reason ?? 'the view starts over', event.version);
            snapshot = true;
            break;
          }
          yield* pass(event, event.end === true);
        }
      }
    } finally {
      unlisten();
    }
  }
}
