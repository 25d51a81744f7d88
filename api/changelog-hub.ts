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
import {
  currentVersion,
  decodeChangelogEntry,
  readChangelog,
  readChangelogEntry,
  readPage,
  trimmedUpTo,
  type ViewChange,
} from '../views/store/read.ts';
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

/** Word that a transaction ended with a change a subscriber does not see. */
function endOf(change: ViewChange): HubEvent {
  return { op: 'end', version: change.version };
}

/**
 * Subscribers of one view that see the same rows: a change is judged once for all of them, and
 * reaches those of every row and those of its row only (a subscriber of one row costs nothing for
 * the changes of other rows). Word of a transaction's end goes only to subscribers holding a change
 * of it that the end did not reach: without that, a subscriber of one row lagging behind would
 * queue an end for every transaction of the view.
 */
class Route {
  readonly access: ViewAccess;
  /** Subscribers of every row. */
  private readonly all = new Set<Listener>();
  /** Subscribers of one row, by its key. */
  private readonly byKey = new Map<string, Set<Listener>>();
  /** Whether `all` were given a change of a transaction that has not ended yet. */
  private allOpen = false;
  /** Subscribers of one row given a change of a transaction that has not ended yet. */
  private readonly keyedOpen = new Set<Listener>();

  constructor(access: ViewAccess) {
    this.access = access;
  }

  get empty(): boolean {
    return this.all.size === 0 && this.byKey.size === 0;
  }

  add(listener: Listener, key: string | null): void {
    if (key === null) return void this.all.add(listener);
    let listeners = this.byKey.get(key);
    if (!listeners) this.byKey.set(key, (listeners = new Set()));
    listeners.add(listener);
  }

  delete(listener: Listener, key: string | null): void {
    if (key === null) return void this.all.delete(listener);
    const listeners = this.byKey.get(key);
    listeners?.delete(listener);
    if (listeners?.size === 0) this.byKey.delete(key);
    this.keyedOpen.delete(listener);
  }

  /** A reset, or word from the hub: every subscriber hears it. */
  broadcast(event: HubEvent): void {
    this.allOpen = false;
    this.keyedOpen.clear();
    for (const listener of this.all) listener(event);
    for (const listeners of this.byKey.values()) for (const listener of listeners) listener(event);
  }

  /** A change, as this route sees it; then the end of its transaction to whoever needs word of it. */
  deliver(change: ViewChange): void {
    const seen = visibleChange(this.access, change);
    const keyed = seen ? this.byKey.get(seen.key) : undefined;
    if (seen) {
      for (const listener of this.all) listener(seen);
      if (keyed) for (const listener of keyed) listener(seen);
    }
    if (!change.end) {
      if (seen) this.allOpen ||= this.all.size > 0;
      if (keyed) for (const listener of keyed) this.keyedOpen.add(listener);
      return;
    }
    const end = endOf(change);
    if (this.allOpen && !seen) for (const listener of this.all) listener(end);
    for (const listener of this.keyedOpen) if (!keyed?.has(listener)) listener(end);
    this.allOpen = false;
    this.keyedOpen.clear();
  }
}

/** The index of the first entry after `version` (binary search: entries are in version order). */
function firstAfter(entries: readonly ViewChange[], version: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareVersions(entries[mid]!.version, version) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Order of Redis stream ids 'ms-seq' (decimal digits without leading zeros: longer is larger). */
export function compareVersions(a: string, b: string): number {
  const ai = a.indexOf('-');
  const bi = b.indexOf('-');
  const am = ai < 0 ? a : a.slice(0, ai);
  const bm = bi < 0 ? b : b.slice(0, bi);
  if (am !== bm) return am.length !== bm.length ? (am.length < bm.length ? -1 : 1) : am < bm ? -1 : 1;
  const as = ai < 0 ? '0' : a.slice(ai + 1);
  const bs = bi < 0 ? '0' : b.slice(bi + 1);
  if (as === bs) return 0;
  return as.length !== bs.length ? (as.length < bs.length ? -1 : 1) : as < bs ? -1 : 1;
}

/** node-redis errors of a connection that is down for a moment (reconnecting). */
const STORE_DOWN = new Set([
  'ClientOfflineError',
  'ClientClosedError',
  'SocketClosedUnexpectedlyError',
  'ConnectionTimeoutError',
]);

/**
 * A read a subscription depends on, retried while Redis is unreachable (a restart, a network blip):
 * the subscriber waits instead of being cut off; after `patienceMs` it gets a clear error.
 */
async function whileStoreDown<T>(
  read: () => Promise<T>,
  signal: AbortSignal | undefined,
  patienceMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + patienceMs;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await read();
    } catch (error) {
      const down =
        error instanceof Error && (STORE_DOWN.has(error.constructor.name) || STORE_DOWN.has(error.name));
      if (!down || signal?.aborted) throw error;
      if (Date.now() > deadline)
        throw new PublicError(
          'The store of the views (Redis) has been unreachable for too long; subscribe again later',
          'STORE_UNAVAILABLE',
        );
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
    throw new PublicError(
      `Expected ${what} to be a version like '1733000000000-0' (from a page or a change), but found '${text.slice(0, 41)}${text.length > 41 ? '…' : ''}'`,
    );
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
  /** Being backfilled beside the live views (not a reason for the instance to stop taking traffic). */
  readonly backfilling?: boolean;
}

const READ_COUNT = 1000;
/** Decoded entries the hub keeps per tailed view, so resuming subscribers catch up from memory. */
const RECENT_ENTRIES = 20_000;

/** How long the recent history of a view nobody follows is kept (a reconnect storm returns to it). */
const RECENT_KEEP_MS = 60_000;

/** Every entry of a view after `from` (exclusive) up to the last one the hub read, in order. */
interface Recent {
  from: string;
  entries: ViewChange[];
  /** Since when nobody follows the view (null: followed). */
  idleSince: number | null;
}

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
  /**
   * The recent history of each tailed view, decoded once: a reconnect storm of subscribers resuming
   * with `since` reads it from here instead of each reading the changelog from Redis.
   */
  private readonly recent = new Map<string, Recent>();
  /**
   * Each change marked as the last of its transaction, one object per change: every subscriber it
   * ends a transaction for gets the same event, so they share its payload (api/shared-subscriptions.ts).
   */
  private readonly endings = new WeakMap<SubscriptionEvent, SubscriptionEvent>();
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
    // Followed again soon after its last subscriber left (all clients reconnecting): the tail goes on
    // from where it stopped, so the recent history stays whole and resuming subscribers read it.
    const kept = this.recent.get(view.name);
    if (
      kept?.idleSince != null &&
      Date.now() - kept.idleSince < RECENT_KEEP_MS &&
      this.lastSeen.get(view.name) === (kept.entries.at(-1)?.version ?? kept.from)
    ) {
      kept.idleSince = null;
      this.tailed.add(view.name);
      await this.interruptRead();
      return;
    }
    const { redis, prefix } = this.options;
    const last = await redis.sendCommand<[string, string[]][]>([
      'XREVRANGE',
      changelogKey(prefix, view.name),
      '+',
      '-',
      'COUNT',
      '1',
    ]);
    if (this.tailed.has(view.name) || !this.routes.get(view.name)?.size) return;
    this.lastSeen.set(view.name, last[0]?.[0] ?? '0-0');
    this.lastSeq.set(view.name, last[0] ? decodeChangelogEntry(view, last[0]).seq : 0);
    this.recent.set(view.name, { from: last[0]?.[0] ?? '0-0', entries: [], idleSince: null });
    this.tailed.add(view.name);
    await this.interruptRead();
  }

  /** The entry at exactly `version` when the recent history holds it. */
  private recentEntry(view: string, version: string): ViewChange | undefined {
    const entries = this.recent.get(view)?.entries ?? [];
    const at = firstAfter(entries, version) - 1;
    return at >= 0 && entries[at]!.version === version ? entries[at] : undefined;
  }

  /** Keep what the tail read; the history restarts where it was not contiguous or grew too long. */
  private remember(view: string, before: string, entries: ViewChange[]): void {
    let recent = this.recent.get(view);
    if (!recent || (recent.entries.at(-1)?.version ?? recent.from) !== before) {
      recent = { from: before, entries: [], idleSince: null };
      this.recent.set(view, recent);
    }
    recent.entries.push(...entries);
    if (recent.entries.length > RECENT_ENTRIES) {
      const dropped = recent.entries.splice(0, recent.entries.length - RECENT_ENTRIES / 2);
      recent.from = dropped.at(-1)!.version;
    }
  }

  /**
   * Changelog entries after `after` (exclusive), oldest first: from the hub's recent history when it
   * reaches back that far (ending at the last entry the hub read: later ones reach the subscriber
   * live), else from Redis.
   */
  private async history(
    view: CompiledView,
    after: string,
    count: number,
    signal: AbortSignal | undefined,
  ): Promise<ViewChange[]> {
    const recent = this.recent.get(view.name);
    if (recent && compareVersions(after, recent.from) >= 0) {
      const from = firstAfter(recent.entries, after);
      return recent.entries.slice(from, from + count);
    }
    const { redis, prefix } = this.options;
    return whileStoreDown(() => readChangelog(redis, prefix, view, after, count), signal);
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
    return (
      this.availability.get(view) ?? {
        servable: false,
        state: 'building',
        reason: `View ${view} has no state in Redis yet`,
        floor: '0-0',
      }
    );
  }

  /** Read every view's status, fingerprint and floor; tell subscribers of views that stopped being servable. */
  /**
   * Whether the views can be served, as Redis says (an API-only instance has no engine to ask):
   * every view live and built by this definition, and Redis answering.
   */
  health(): {
    ready: boolean;
    problems: string[];
    views: Map<string, { state: 'live' | 'building' | 'stopped'; reason?: string }>;
  } {
    const problems: string[] = [];
    const views = new Map<string, { state: 'live' | 'building' | 'stopped'; reason?: string }>();
    for (const view of this.options.registry.views) {
      const a = this.availability.get(view.name);
      if (a?.servable) views.set(view.name, { state: 'live' });
      else {
        const reason = a?.reason ?? `View ${view.name} has not been read from Redis yet`;
        views.set(view.name, { state: a?.state ?? 'building', reason });
        // A view backfilled beside the live ones answers with this reason; the others serve meanwhile.
        if (!a?.backfilling) problems.push(reason);
      }
    }
    const staleMs = Date.now() - this.refreshedAt;
    if (staleMs > 5_000)
      problems.push(
        `the views' statuses were last read from Redis ${Math.round(staleMs / 1000)} s ago (is Redis reachable?)`,
      );
    return { ready: problems.length === 0, problems, views };
  }

  private async refreshAvailability(): Promise<void> {
    const { registry, redis, prefix } = this.options;
    const fields = registry.views.flatMap((v) => [
      `status:${v.name}`,
      `fp:${v.name}`,
      `floor:${v.name}`,
      `next:${v.name}`,
    ]);
    const values = await redis.sendCommand<(string | null)[]>(['HMGET', metaKey(prefix), ...fields]);
    this.refreshedAt = Date.now();
    registry.views.forEach((view, i) => {
      const [status, fp, floor, nextStatus] = [
        values[4 * i],
        values[4 * i + 1],
        values[4 * i + 2],
        values[4 * i + 3],
      ];
      const parsed = status ? (JSON.parse(status) as ViewStatus) : null;
      // This instance's definition built beside the one served (a swap: engine.ts).
      const beside = nextStatus ? (JSON.parse(nextStatus) as ViewStatus & { fingerprint?: string }) : null;
      const swapping = fp !== view.fingerprint && beside?.fingerprint === view.fingerprint;
      let reason = '';
      if (!parsed) reason = `View ${view.name} has no state in Redis (being built, or Redis lost it)`;
      else if (swapping)
        reason = `View ${view.name} changed: its new definition is being built beside the old one (${beside.reason ?? 'backfilling'}), and is served once it takes over`;
      else if (fp !== view.fingerprint)
        reason = `View ${view.name} in Redis was built from another definition (another version of the service writes it)`;
      else if (parsed.state === 'building')
        reason = `View ${view.name} is being built${parsed.reason ? `: ${parsed.reason}` : ''}`;
      else if (parsed.state === 'stopped')
        reason = `View ${view.name} is stopped${parsed.reason ? `: ${parsed.reason}` : ''}`;
      const state = reason === '' ? 'live' : parsed?.state === 'stopped' ? 'stopped' : 'building';
      const next: Availability = {
        servable: reason === '',
        state,
        reason,
        floor: floor ?? '0-0',
        backfilling:
          swapping ||
          (fp === view.fingerprint && parsed?.state === 'building' && parsed.backfill !== undefined),
      };
      const before = this.availability.get(view.name);
      this.availability.set(view.name, next);
      if (before?.servable && !next.servable)
        this.broadcast(view.name, { op: 'reset', reason, version: before.floor, synthetic: true });
    });
    if (this.availabilityWaiters.size > 0) for (const wake of [...this.availabilityWaiters]) wake();
  }

  private broadcast(view: string, event: ViewChange | Extract<HubEvent, { synthetic: true }>): void {
    for (const route of this.routes.get(view)?.values() ?? []) {
      if (event.op === 'reset') route.broadcast(event);
      else route.deliver(event);
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
          this.remember(view.name, before, decoded);
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
          for (const [name, recent] of this.recent)
            if (recent.idleSince !== null && lastCheck - recent.idleSince > RECENT_KEEP_MS)
              this.recent.delete(name);
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

  /** Listen to the changes of a view this access sees, of every row or (with `key`) of one. */
  private async listen(
    view: CompiledView,
    access: ViewAccess,
    key: string | null,
    listener: Listener,
  ): Promise<() => void> {
    let routes = this.routes.get(view.name);
    if (!routes) this.routes.set(view.name, (routes = new Map()));
    let route = routes.get(access.route);
    if (!route) routes.set(access.route, (route = new Route(access)));
    route.add(listener, key);
    this.active.set(view.name, (this.active.get(view.name) ?? 0) + 1);
    const unlisten = (): void => {
      route.delete(listener, key);
      if (route.empty) routes.delete(access.route);
      this.active.set(view.name, (this.active.get(view.name) ?? 1) - 1);
      if (routes.size === 0) {
        this.tailed.delete(view.name);
        const recent = this.recent.get(view.name);
        if (recent) recent.idleSince = Date.now();
      }
    };
    try {
      await this.follow(view);
    } catch (error) {
      unlisten();
      throw error;
    }
    return unlisten;
  }

  private endingTransaction(event: SubscriptionEvent): SubscriptionEvent {
    let ending = this.endings.get(event);
    if (!ending) this.endings.set(event, (ending = { ...event, transactionEnd: true }));
    return ending;
  }

  /** Wait until a view is servable (or the subscription ends). */
  private async untilServable(view: string, signal: AbortSignal | undefined): Promise<boolean> {
    while (!this.servable(view).servable) {
      if (this.stopped || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.availabilityWaiters.delete(wake);
          signal?.removeEventListener('abort', wake);
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
    // The client going away wakes a waiting subscription at once (one listener for its whole life).
    options.signal?.addEventListener(
      'abort',
      () => {
        wake?.();
        wake = null;
      },
      { once: true },
    );
    // The last change given out is held back until its transaction's end is known (see `pass`).
    let held: SubscriptionEvent | null = null;
    const unlisten = await whileStoreDown(
      () =>
        this.listen(view, options.access, options.key, (event) => {
          // An end matters only to a change held back or still buffered.
          if (event.op === 'end' && held === null && buffer.length === 0) return;
          if (buffer.length >= maxBuffered) overflow = true;
          else buffer.push(event);
          wake?.();
          wake = null;
        }),
      options.signal,
    );
    const matches = (change: { key: string }): boolean => options.key === null || change.key === options.key;
    const reset = (reason: string, version: string): SubscriptionEvent => ({
      view: view.name,
      version,
      op: 'reset',
      key: '',
      row: null,
      previous: null,
      reason,
      seq: 0,
    });
    // The last change seen is held back until the next one or the end of its transaction, so the
    // one that ends a transaction can say so (transactionEnd) whatever this subscriber filters out.
    const pass = (event: SubscriptionEvent | null, end: boolean): SubscriptionEvent[] => {
      const ready: SubscriptionEvent[] = [];
      if (event) {
        if (held) ready.push(held);
        held = event;
      }
      if (end && held) {
        ready.push(this.endingTransaction(held));
        held = null;
      }
      return ready;
    };
    const gap = (version: string): SubscriptionEvent =>
      reset(
        `changes after version ${version} were trimmed from the changelog before this subscription read them; a fresh snapshot follows`,
        version,
      );
    try {
      let last = options.since === null ? null : parseVersion(options.since);
      /** Number of the last changelog entry this subscription has (0: unknown). */
      let lastSeq = 0;
      let snapshot = options.snapshot && last === null;
      if (last === null && !snapshot) {
        // From now: changes the tail reads late (it may still be catching up) are not this subscriber's.
        last = await whileStoreDown(() => currentVersion(redis, prefix, view), options.signal);
      }
      // The statuses the tail refreshes every 250 ms will do; older ones are read again.
      if (Date.now() - this.refreshedAt > 250)
        await whileStoreDown(() => this.refreshAvailability(), options.signal);
      const availability = this.servable(view.name);
      const known = last === null ? undefined : this.recentEntry(view.name, last);
      if (!availability.servable) {
        yield reset(availability.reason, availability.floor);
        snapshot = true;
      } else if (known && compareVersions(last!, availability.floor) >= 0) {
        // Resuming inside the recent history: no Redis read needed to place it.
        lastSeq = known.seq;
      } else if (last !== null) {
        const newest = await whileStoreDown(() => currentVersion(redis, prefix, view), options.signal);
        if (compareVersions(last, newest) > 0) {
          throw new PublicError(
            `Version ${last} of ${view.name} is ahead of its newest version ${newest}; resume from a version this service gave you`,
            'VERSION_AHEAD',
          );
        }
        const trimmed = await whileStoreDown(() => trimmedUpTo(redis, prefix, view), options.signal);
        if (compareVersions(last, availability.floor) < 0) {
          yield reset(
            `version ${last} is older than the view's current history (it was rebuilt at ${availability.floor}); a fresh snapshot follows`,
            availability.floor,
          );
          snapshot = true;
        } else if (compareVersions(last, trimmed) < 0) {
          yield reset(
            `version ${last} is no longer in the changelog (trimmed up to ${trimmed}); a fresh snapshot follows`,
            trimmed,
          );
          snapshot = true;
        } else if (last !== '0-0') {
          const entry = await whileStoreDown(
            () => readChangelogEntry(redis, prefix, view, last!),
            options.signal,
          );
          if (entry) lastSeq = entry.seq;
          else {
            yield reset(
              `version ${last} is not in the changelog of ${view.name}; a fresh snapshot follows`,
              availability.floor,
            );
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
              const page = await whileStoreDown(
                () => readPage(redis, prefix, view, after, 1000, { filter: options.access.filter }),
                options.signal,
              );
              if (version === null) {
                version = page.version;
                lastSeq = page.seq;
              }
              for (const { key, row } of page.rows) {
                // The page applied the row filter; a subscription's where is judged here.
                if (matches({ key }) && (options.access.where?.(row) ?? true))
                  for (const ready of pass(
                    { view: view.name, version, op: 'snapshot', key, row, previous: null, seq: lastSeq },
                    false,
                  ))
                    yield ready;
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
          for (const ready of pass(null, true)) yield ready;
          last = version;
          snapshot = false;
        }
        if (last !== null) {
          for (;;) {
            const from: string = last;
            const batch: ViewChange[] = await this.history(view, from, 1000, options.signal);
            for (const change of batch) {
              if (isGap(lastSeq, change)) {
                for (const ready of pass(null, true)) yield ready;
                yield gap(last);
                snapshot = true;
                break;
              }
              last = change.version;
              lastSeq = change.seq;
              if (change.op === 'reset') {
                for (const ready of pass(null, true)) yield ready;
                yield reset(change.reason ?? 'the view starts over', change.version);
                snapshot = true;
                break;
              }
              const seen = visibleChange(options.access, change);
              for (const ready of pass(seen && matches(seen) ? seen : null, change.end === true)) yield ready;
            }
            if (snapshot || batch.length < 1000) break;
          }
          // Caught up: steps are written whole, so the history read ends at a transaction's end.
          for (const ready of pass(null, true)) yield ready;
        }
        while (!snapshot) {
          if (overflow) {
            throw new PublicError(
              `Subscription to ${view.name} fell more than ${maxBuffered} changes behind; resume with since: ${last ?? '0-0'}`,
              'SUBSCRIBER_TOO_SLOW',
            );
          }
          const event = buffer.shift();
          if (!event) {
            if (options.signal?.aborted || this.stopped) return;
            // Woken by the next event for it, or by the client going away (released at once).
            await new Promise<void>((r) => (wake = r));
            continue;
          }
          if ('synthetic' in event) {
            for (const ready of pass(null, true)) yield ready;
            yield reset(event.reason, event.version);
            snapshot = true;
            break;
          }
          // Live events come from the hub, which reads every entry and reports gaps itself
          // (a keyed subscription sees only some entries, so their numbers jump by design).
          if (last !== null && compareVersions(event.version, last) <= 0) continue;
          last = event.version;
          if (event.op === 'end') {
            for (const ready of pass(null, true)) yield ready;
            continue;
          }
          lastSeq = event.seq;
          if (event.op === 'reset') {
            for (const ready of pass(null, true)) yield ready;
            yield reset(event.reason ?? 'the view starts over', event.version);
            snapshot = true;
            break;
          }
          for (const ready of pass(event, event.end === true)) yield ready;
        }
      }
    } finally {
      unlisten();
    }
  }
}
