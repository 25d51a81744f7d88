/**
 * The changelog of a view that reactions read is trimmed here, not by the write step: to its
 * usual length (`redis.changelogMaxLength`, for subscribers resuming with `since`), but never past
 * an entry a reaction group has not yet delivered and acknowledged. A reaction that falls behind
 * keeps its changes; the changelog grows until it catches up.
 */
import { LuaScript, type RedisClient } from '../views/store/redis.ts';

const TRIM = new LuaScript(`
local key, keep = KEYS[1], tonumber(ARGV[1])
if redis.call('EXISTS', key) == 0 then return 0 end
local function parse(id) local ms, seq = string.match(id, '^(%d+)-(%d+)$') return tonumber(ms), tonumber(seq) end
local function before(a, b) local am, as = parse(a) local bm, bs = parse(b) return am < bm or (am == bm and as < bs) end
local length = redis.call('XLEN', key)
if length <= keep then return 0 end
-- The oldest entry to keep for subscribers: the keep-th newest.
local excess = redis.call('XRANGE', key, '-', '+', 'COUNT', length - keep + 1)
local target = excess[#excess][1]
-- No further than the slowest reaction group: its oldest pending entry, or the entry after its last delivered one.
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
    if before(floor, target) then target = floor end
  end
end
return redis.call('XTRIM', key, 'MINID', target)
`);

/** Trim a reacted view's changelog behind its slowest reaction; the number of entries removed. */
export async function trimBehindReactions(redis: RedisClient, changelog: string, keep: number): Promise<number> {
  return TRIM.run<number>(redis, [changelog], [String(keep)]);
}
