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
local store = storageOf(view, FP)
local meta = redis.call('HMGET', metaKey(), 'status:' .. view, 'fp:' .. view)
if not meta[1] then return {'unavailable', ''} end
if meta[2] ~= FP then return {'unavailable', 'definition'} end
local status = cjson.decode(meta[1])
if status.state ~= 'live' then return {'unavailable', meta[1]} end
if redis.call('HEXISTS', busyKey(), view) == 1 then return {'busy', redis.call('HGET', busyKey(), view)} end
`;

/** Shared by the page scripts: the view's version (`version`) and the number of its changelog entry (`n`). */
const LAST_ENTRY = `
local last = redis.call('XREVRANGE', changelogKey(view), '+', '-', 'COUNT', 1)
local version, n = last[1] and last[1][1] or '0-0', 0
if last[1] then
  local f = last[1][2]
  for j = 1, #f, 2 do if f[j] == 'n' then n = tonumber(f[j + 1]) end end
end`;

/**
 * Read one page of a view atomically: the rows after a key (in key order) and the view's version
 * at that instant. ARGV: P view fingerprint afterKey|'' limit budget needle… →
 * {'ok', version, keys, rows, seq, scannedTo} (seq: the number of the changelog entry at that version).
 *
 * With needles (a row filter: each `"field":<json value>`), only rows holding every needle as a
 * top-level member are returned, and at most `budget` rows are examined: when that runs out first,
 * `scannedTo` is the last key examined, and the next page continues after it (bounded work per read,
 * however rare the matching rows). A needle cannot match inside a string value: there every quote is
 * escaped, so `,"field":` or `{"field":` occurs only at a member's start.
 */
export const PAGE_SCRIPT = `${READABLE}
local after, limit, budget = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local needles = {}
for i = 7, #ARGV do needles[#needles + 1] = ARGV[i] end
local function holds(row, needle)
  local at = string.find(row, needle, 1, true)
  while at do
    local before, after = string.sub(row, at - 1, at - 1), string.sub(row, at + #needle, at + #needle)
    if (before == ',' or before == '{') and (after == ',' or after == '}') then return true end
    at = string.find(row, needle, at + 1, true)
  end
  return false
end
local from = after == '' and '-' or ('(' .. after)
local keys, rows, scannedTo = {}, {}, ''
if #needles == 0 then
  keys = redis.call('ZRANGEBYLEX', indexKey(store), from, '+', 'LIMIT', 0, limit)
  if #keys > 0 then rows = redis.call('HMGET', rowsKey(store), unpack(keys)) end
else
  local scanned = 0
  while #keys < limit do
    if scanned >= budget then scannedTo = string.sub(from, 2); break end
    local chunk = math.min(1000, budget - scanned)
    local ks = redis.call('ZRANGEBYLEX', indexKey(store), from, '+', 'LIMIT', 0, chunk)
    if #ks == 0 then break end
    local rs = redis.call('HMGET', rowsKey(store), unpack(ks))
    for j = 1, #ks do
      local row, ok = rs[j], rs[j] ~= false
      for n = 1, #needles do ok = ok and holds(row, needles[n]) end
      if ok then
        keys[#keys + 1] = ks[j]
        rows[#rows + 1] = row
        if #keys == limit then break end
      end
    end
    scanned = scanned + #ks
    from = '(' .. ks[#ks]
    if #ks < chunk then break end
  end
end
${LAST_ENTRY}
return {'ok', version, keys, rows, n, scannedTo}
`;

/** Read one row by key. ARGV: P view fingerprint key → {'ok', row|false}. */
export const ROW_SCRIPT = `${READABLE}
local last = redis.call('XREVRANGE', changelogKey(view), '+', '-', 'COUNT', 1)
return {'ok', redis.call('HGET', rowsKey(store), ARGV[4]), last[1] and last[1][1] or '0-0'}
`;

/**
 * Read a run of a view's list atomically with its version: members after `after` in key order
 * (sig '') or in a declared ordering's index (sig: its signature), their rows, and the view's row
 * count. ARGV: P view fingerprint sig after|'' count all →
 * {'ok', version, members, rows, seq, rowCount}, or {'ok', 'large', rowCount} when `all` (the
 * whole view, for a sort in memory) is asked of a view of more than `count` rows.
 * An ordering member is `<sort terms>\0\0<view key>`; the key is what the rows hash is keyed by.
 */
export const LIST_SCRIPT = `${READABLE}
local sig, after, count, all = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
local rowCount = redis.call('ZCARD', indexKey(store))
local members, keys, rows = {}, {}, {}
if all then
  if rowCount > count then return {'ok', 'large', rowCount} end
  members = redis.call('ZRANGEBYLEX', indexKey(store), '-', '+')
elseif count > 0 then
  local from = after == '' and '-' or ('(' .. after)
  members = redis.call('ZRANGEBYLEX', sig == '' and indexKey(store) or orderingKey(store, sig), from, '+', 'LIMIT', 0, count)
end
if sig == '' or all then keys = members
else
  for j = 1, #members do
    local at = string.find(members[j], '\\0\\0', 1, true)
    keys[j] = string.sub(members[j], at + 2)
  end
end
-- HMGET a thousand at a time (unpack has a stack limit).
for from = 1, #keys, 1000 do
  local got = redis.call('HMGET', rowsKey(store), unpack(keys, from, math.min(from + 999, #keys)))
  for j = 1, #got do rows[#rows + 1] = got[j] end
end
${LAST_ENTRY}
return {'ok', version, members, rows, n, rowCount}
`;
