/**
 * The ingest side of reactions: the process that writes the views owns their reaction groups and
 * trims the changelogs they read, so neither depends on a process running the handlers.
 *
 *   - A group is created as soon as its view is live: where the view's history starts (its floor)
 *     when the view went live under this config — a first build or a rebuild — so changes made
 *     before any worker started are kept for it; at the changelog's end when the reaction is
 *     declared on a view that was already live (it handles changes from its declaration on).
 *   - Each reacted changelog is trimmed to `redis.changelogMaxLength` for subscribers, never past a
 *     change a group has not acknowledged — unless a reaction's `maxBacklog` is passed: then the
 *     oldest go anyway and the reaction's dead letters say which (never silently).
 *   - The backlog of each reaction (pending + not yet delivered) is measured, reported and warned
 *     about past its `warnBacklog`.
 */
import type { Config } from '../views/config.ts';
import { reactionViewName, type ReactionDef } from '../views/reactions.ts';
import { changelogKey, metaKey, reactionCountsKey, reactionDeadLetterKey, reactionJoinedKey, reactionLastErrorKey } from '../views/store/keys.ts';
import { LuaScript, type RedisClient } from '../views/store/redis.ts';
import { toRecord } from '../views/store/state.ts';

export function groupName(reaction: string): string {
  return `reaction:${reaction}`;
}

/** The config's reactions with the name of the view each reads. */
export function reactionsOf(config: Config): { readonly name: string; readonly view: string; readonly reaction: ReactionDef }[] {
  return Object.entries(config.reactions ?? {}).map(([name, reaction]) => ({ name, view: reactionViewName(reaction, config.views)!, reaction: reaction as ReactionDef }));
}

/** The views the config's reactions read (their changelogs are trimmed behind the reactions). */
export function reactedViews(config: Config): Set<string> {
  return new Set(reactionsOf(config).map((r) => r.view));
}

export interface ReactionBacklog {
  readonly reaction: string;
  readonly view: string;
  /** False until the group exists (the view is not live yet). */
  readonly joined: boolean;
  /** Delivered to a worker, not yet acknowledged. */
  readonly pending: number;
  /** Not yet delivered to any worker (null when Redis cannot tell). */
  readonly undelivered: number | null;
  readonly consumers: number;
  readonly deadLetters: number;
  /** Outcomes so far, over every process that ran it: handled, skipped, retried, dead-lettered, lost. */
  readonly counts: Readonly<Record<string, number>>;
  readonly lastError: { readonly error: string; readonly at: number; readonly idempotencyKey: string } | null;
  /** More changes wait than the reaction's `warnBacklog`. */
  readonly behind: boolean;
}

type GroupInfo = Record<string, unknown>;


async function groupInfo(redis: RedisClient, stream: string, group: string): Promise<GroupInfo | undefined> {
  const groups = await redis.sendCommand<unknown[][]>(['XINFO', 'GROUPS', stream]).catch(() => [] as unknown[][]);
  return groups.map((g) => Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [String(g[2 * i]), g[2 * i + 1]]))).find((g) => g['name'] === group);
}

/** Where each reaction stands: for `status` and /metrics. */
export async function reactionBacklogs(redis: RedisClient, prefix: string, config: Config): Promise<ReactionBacklog[]> {
  return Promise.all(
    reactionsOf(config).map(async ({ name, view, reaction }) => {
      const [group, deadLetters, last, counts] = await Promise.all([
        groupInfo(redis, changelogKey(prefix, view), groupName(name)),
        redis.sendCommand<number>(['XLEN', reactionDeadLetterKey(prefix, name)]),
        redis.sendCommand<string[]>(['HGETALL', reactionLastErrorKey(prefix, name)]).then(toRecord),
        redis.sendCommand<string[]>(['HGETALL', reactionCountsKey(prefix, name)]).then(toRecord),
      ]);
      const lastError = Object.keys(last).length > 0 ? last : null;
      const pending = Number(group?.['pending'] ?? 0);
      const lag = group?.['lag'];
      const undelivered = group === undefined ? 0 : lag === null || lag === undefined ? null : Number(lag);
      return {
        reaction: name,
        view,
        joined: group !== undefined,
        pending,
        undelivered,
        consumers: Number(group?.['consumers'] ?? 0),
        deadLetters,
        counts: Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Number(v)])),
        lastError: lastError ? { error: lastError['error'] ?? '', at: Number(lastError['at'] ?? 0), idempotencyKey: lastError['idempotencyKey'] ?? '' } : null,
        behind: pending + (undelivered ?? 0) > reaction.warnBacklog,
      };
    }),
  );
}

const TRIM = new LuaScript(`
local key, keep, cap, prefix = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', key) == 0 then return 0 end
local function parse(id) local ms, seq = string.match(id, '^(%d+)-(%d+)$') return tonumber(ms), tonumber(seq) end
local function before(a, b) local am, as = parse(a) local bm, bs = parse(b) return am < bm or (am == bm and as < bs) end
local length = redis.call('XLEN', key)
if length <= keep then return 0 end
-- The oldest entry to keep for subscribers (the keep-th newest), and the oldest any bound allows.
local function nth(n) local e = redis.call('XRANGE', key, '-', '+', 'COUNT', n) return e[#e][1] end
local target = nth(length - keep + 1)
local hard = cap > 0 and length > cap and nth(length - cap + 1) or nil
-- No further than the slowest group: its oldest pending entry, or the entry after its last delivered one.
local floors = {}
for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local name, last
  for j = 1, #group, 2 do
    if group[j] == 'name' then name = group[j + 1] elseif group[j] == 'last-delivered-id' then last = group[j + 1] end
  end
  if string.sub(name, 1, 9) == 'reaction:' then
    local pending = redis.call('XPENDING', key, name)
    local floor = last
    if pending[1] > 0 then floor = pending[2] else
      local nextEntry = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
      floor = nextEntry[1] and nextEntry[1][1] or last
    end
    floors[#floors + 1] = {string.sub(name, 10), floor}
    if before(floor, target) then target = floor end
  end
end
-- Past the bound, the oldest go anyway: each reaction that had not handled them is told which.
if hard and before(target, hard) then
  target = hard
  for _, g in ipairs(floors) do
    if before(g[2], hard) then
      redis.call('XADD', prefix .. ':r:' .. g[1] .. ':dlq', 'MAXLEN', '~', 100000, '*', 'error', 'trimmed from the changelog before it was handled (maxBacklog reached)', 'from', g[2], 'to', hard)
    end
  end
end
return redis.call('XTRIM', key, 'MINID', target)
`);

/** Trim a reacted changelog behind its slowest reaction (or to `cap` entries, when set); the number of entries removed. */
export async function trimBehindReactions(redis: RedisClient, prefix: string, changelog: string, keep: number, cap: number | null): Promise<number> {
  return TRIM.run<number>(redis, [changelog], [String(keep), String(cap ?? 0), prefix]);
}

export interface ReactionGroupsOptions {
  readonly config: Config;
  readonly prefix: string;
  readonly redis: RedisClient;
  readonly changelogMaxLength: number;
  readonly log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  readonly onBacklog?: (backlogs: readonly ReactionBacklog[]) => void;
  /** How often groups are checked and changelogs trimmed (ms; default 1 000). */
  readonly everyMs?: number;
}

/** Keeps the reaction groups and trims the changelogs they read, until stopped. */
export class ReactionGroups {
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly warnedAt = new Map<string, number>();
  private readonly options: ReactionGroupsOptions;

  constructor(options: ReactionGroupsOptions) {
    this.options = options;
  }

  start(): void {
    if (reactionsOf(this.options.config).length === 0) return;
    const tick = (): void => {
      this.running = this.tick()
        .catch((error: unknown) => this.options.log('warn', 'reaction groups: a check failed; retrying', { err: error }))
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(tick, this.options.everyMs ?? 1_000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round: create the groups of views now live, trim, measure. */
  async tick(): Promise<void> {
    const { config, prefix, redis } = this.options;
    const reactions = reactionsOf(config);
    for (const { name, view } of reactions) await this.ensureGroup(name, view);
    for (const view of new Set(reactions.map((r) => r.view))) {
      const caps = reactions.filter((r) => r.view === view).map((r) => r.reaction.maxBacklog);
      const cap = caps.some((c) => c === null) ? null : Math.min(...(caps as number[]));
      await trimBehindReactions(redis, prefix, changelogKey(prefix, view), this.options.changelogMaxLength, cap);
    }
    const backlogs = await reactionBacklogs(redis, prefix, config);
    this.options.onBacklog?.(backlogs);
    for (const b of backlogs) {
      if (!b.behind || Date.now() - (this.warnedAt.get(b.reaction) ?? 0) < 60_000) continue;
      this.warnedAt.set(b.reaction, Date.now());
      this.options.log('warn', 'a reaction is far behind: its changes are kept in the changelog until it handles them', {
        reaction: b.reaction,
        view: b.view,
        pending: b.pending,
        undelivered: b.undelivered,
        consumers: b.consumers,
      });
    }
  }

  private async ensureGroup(name: string, view: string): Promise<void> {
    const { prefix, redis } = this.options;
    const stream = changelogKey(prefix, view);
    const [status, floor] = await redis.sendCommand<(string | null)[]>(['HMGET', metaKey(prefix), `status:${view}`, `floor:${view}`]);
    if (!status) return;
    const { state, since } = JSON.parse(status) as { state: string; since: number };
    if (state !== 'live' || (await groupInfo(redis, stream, groupName(name)))) return;
    const joinedBefore = await redis.sendCommand<string | null>(['GET', reactionJoinedKey(prefix, name)]);
    // Live under this config (built or rebuilt since this process started), or rebuilt since the
    // group last joined: from where the history starts. Declared on a view live all along: from now.
    const fromFloor = joinedBefore !== null || since >= this.startedAt;
    const start = fromFloor ? (floor ?? '0-0') : '$';
    try {
      await redis.sendCommand(['XGROUP', 'CREATE', stream, groupName(name), start, 'MKSTREAM']);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('BUSYGROUP')) return;
      throw error;
    }
    const joinedAt = fromFloor ? start : ((await redis.sendCommand<[string, string[]][]>(['XREVRANGE', stream, '+', '-', 'COUNT', '1']))[0]?.[0] ?? '0-0');
    await redis.sendCommand(['SET', reactionJoinedKey(prefix, name), joinedAt]);
    this.options.log('info', 'reaction group created', { reaction: name, view, from: fromFloor ? 'where the view’s history starts' : 'the end of the changelog (declared on a live view)', at: joinedAt });
  }
}
