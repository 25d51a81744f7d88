/**
 * The read side's scripts: a view is read only when it is live, holds the definition the reader
 * expects (another version of the service may be writing it), and is not in the middle of a
 * transaction applied in parts. Each read is one atomic script, so a page and its version agree.
 */
import { LUA_KEYS } from './keys.ts';

/** Shared by the read scripts: returns early with the reason when the view cannot be read. */
const READABLE = `
local P, view, FP = ARGV[1], ARGV[2], ARGV[3]
${LUA_KEYS}
local meta = redis.call('HMGET', metaKey(), 'status:' .. view, 'fp:' .. view)
if not meta[1] then return {'unavailable', ''} end
if meta[2] ~= FP then return {'unavailable', 'definition'} end
local status = cjson.decode(meta[1])
if status.state ~= 'live' then return {'unavailable', meta[1]} end
if redis.call('HEXISTS', busyKey(), view) == 1 then return {'busy', redis.call('HGET', busyKey(), view)} end
`;

/**
 * Read one page of a view atomically: the rows after a key (in key order) and the view's version
 * at that instant. ARGV: P view fingerprint afterKey|'' limit → {'ok', version, keys, rows, seq}
 * (seq: the number of the changelog entry at that version).
 */
export const PAGE_SCRIPT = `${READABLE}
local after, limit = ARGV[4], tonumber(ARGV[5])
local keys = redis.call('ZRANGEBYLEX', indexKey(view), after == '' and '-' or ('(' .. after), '+', 'LIMIT', 0, limit)
local rows = {}
if #keys > 0 then rows = redis.call('HMGET', rowsKey(view), unpack(keys)) end
local last = redis.call('XREVRANGE', changelogKey(view), '+', '-', 'COUNT', 1)
local n = 0
if last[1] then
  local f = last[1][2]
  for j = 1, #f, 2 do if f[j] == 'n' then n = tonumber(f[j + 1]) end end
end
return {'ok', last[1] and last[1][1] or '0-0', keys, rows, n}
`;

/** Read one row by key. ARGV: P view fingerprint key → {'ok', row|false}. */
export const ROW_SCRIPT = `${READABLE}
return {'ok', redis.call('HGET', rowsKey(view), ARGV[4])}
`;
