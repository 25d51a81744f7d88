/**
 * The atomic step: one Lua script call applies a whole batch (one or more source transactions) to
 * every view, appends the changelog entries, parks dead letters, and stores the source position.
 * Redis runs a script atomically, so readers see all of a batch or none of it (DESIGN.md §6.1), and
 * a replayed batch is recognised by its position and skipped (§6.2).
 *
 * ARGV (flat, strings):
 *
 *   P  maxlen  lease  step  stepId  part  partFinal  npos (stream token)×npos  nquiet (view)×nquiet
 *   nbusy (view)×nbusy  nlive (view status)×nlive  nclear (table)×nclear  nimg (table key expected image)×nimg  op…
 *
 *   lease, step   the writer's fencing token and the step it last wrote: another token means
 *                 another writer owns the deployment ('fenced'); another step means Redis is not
 *                 the state this writer left it in — restarted empty, restored from an older dump,
 *                 failed over to a replica that missed writes ('lost'). Nothing is written then.
 *   stepId        unique per step: a step retried after its reply was lost (connection dropped)
 *                 finds its own id in ~last and answers 'dup' instead of being applied twice
 *   part          '' for whole transactions; '<txn>:<n>' for part n of a transaction too large for
 *                 one step (partFinal '1' on its last part). Parts up to ~pending are replays; a
 *                 part's positions are probes (a replay when every stored token is past them) and
 *                 only the last part stores its positions.
 *   quiet         views whose changes are not logged (building, or inside a transaction in parts)
 *   busy          views a non-final part touches: readers wait until the last part clears them, and
 *                 the last part logs one 'reset' entry per such view instead of its row changes
 *   live          views going live with this step (the last snapshot batch): status, a 'reset'
 *                 entry, and floor:<view> = its id (a subscription from before it must start over)
 *   The row-image part (views/plan/row-images.ts) is empty for exactly-ordered sources: tables
 *   whose images a truncate drops, then images to write, each with the text it must still have
 *   ('-' unchecked, '0' absent, '=' + text) — one mismatch and nothing is written ('conflict').
 *
 *   op = 'X' view isAggregate               clear the view (truncate); a delete entry per row
 *      | 'U' view key rowJson               upsert a row of a rows view
 *      | 'D' view key                       delete a row of a rows view
 *      | 'A' view key groupJson dRows nacc acc×nacc      change a group's accumulators
 *            acc = 'c' dCount                           count(x)
 *                | 's' dUnscaled dScale dCount n (scale d)×n
 *                                                       exact sum (sum/avg/count of x): the delta
 *                                                       as unscaled integer and scale, and how
 *                                                       many values of each scale came or went
 *                | 'f' dSum dCount                      float sum
 *                | 'x' wantMin wantMax n (member d)×n   min/max: the group's candidate multiset
 *      | 'Q' reason payload                 dead letter
 *
 * Stored aggregate row: {"g":[group values],"n":"<rows>","a":[state per accumulator]}
 *   count → "<n>"   sum → ["<unscaled>",<scale>,"<count>",{"<scale>":<values>}]
 *   float sum → ["<sum>","<count>"]   candidates → [<min member>|null, <max member>|null]
 *
 * Changelog entry fields: o (i|u|d), k (encoded key), r (row after, '' when deleted),
 * p (row before, '' when inserted). Its stream id is the view's version.
 *
 * Changelog entry fields: o (i|u|d|reset), k (encoded key), r (row after, '' when deleted),
 * p (row before, '' when inserted), why (reset only), n (the entry's number in the view's
 * changelog, without gaps). Its stream id is the view's version.
 *
 * Returns {'fenced', holder} or {'lost', storedStep} (see lease and step), {'dup', 'retried', step}
 * for a step already applied by an earlier attempt, {'dup', n} when every
 * position is already stored (a replay), {'conflict', table} when an image changed since it was
 * read, else {'ok', changelogEntries, newStep}.
 */
import { LUA_KEYS } from './keys.ts';

export const APPLY_SCRIPT = `
local P = ARGV[1]
local MAXLEN = ARGV[2]
${LUA_KEYS}
local EMPTY_OBJECT = cjson.decode('{}')

-- Exact decimal addition on decimal text, in 7-digit chunks (Lua numbers are doubles).
local CHUNK = 7
local function splitDecimal(s)
  local neg = false
  if string.sub(s, 1, 1) == '-' then neg = true; s = string.sub(s, 2) end
  local int, frac = string.match(s, '^(%d*)%.?(%d*)$')
  return neg, int or '0', frac or ''
end
local function compareDigits(x, y)
  local pos = 1
  while pos <= #x do
    local a = tonumber(string.sub(x, pos, pos + CHUNK - 1))
    local b = tonumber(string.sub(y, pos, pos + CHUNK - 1))
    if a ~= b then return a < b and -1 or 1 end
    pos = pos + CHUNK
  end
  return 0
end
local function addDigits(x, y, sign)
  local out = {}
  local carry = 0
  local pos = #x
  while pos > 0 do
    local s = math.max(1, pos - CHUNK + 1)
    local w = pos - s + 1
    local base = 10 ^ w
    local v = tonumber(string.sub(x, s, pos)) + sign * tonumber(string.sub(y, s, pos)) + carry
    if v >= base then carry = 1; v = v - base
    elseif v < 0 then carry = -1; v = v + base
    else carry = 0 end
    table.insert(out, 1, string.format('%0' .. w .. 'd', v))
    pos = s - 1
  end
  if carry > 0 then table.insert(out, 1, '1') end
  return table.concat(out)
end
local function decimalAdd(a, b)
  local na, ia, fa = splitDecimal(a)
  local nb, ib, fb = splitDecimal(b)
  local scale = math.max(#fa, #fb)
  local x = ia .. fa .. string.rep('0', scale - #fa)
  local y = ib .. fb .. string.rep('0', scale - #fb)
  local len = math.max(#x, #y)
  x = string.rep('0', len - #x) .. x
  y = string.rep('0', len - #y) .. y
  local neg, digits
  if na == nb then
    digits = addDigits(x, y, 1); neg = na
  elseif compareDigits(x, y) >= 0 then
    digits = addDigits(x, y, -1); neg = na
  else
    digits = addDigits(y, x, -1); neg = nb
  end
  digits = string.gsub(digits, '^0+', '')
  if #digits <= scale then digits = string.rep('0', scale - #digits + 1) .. digits end
  local out = digits
  if scale > 0 then out = string.sub(digits, 1, #digits - scale) .. '.' .. string.sub(digits, #digits - scale + 1) end
  if neg and string.find(digits, '[1-9]') then out = '-' .. out end
  return out
end

-- Scaled-integer sums: doubles while both sides stay below 10^15 (exact), decimal text beyond.
local function addScaled(aU, aS, bU, bS)
  local scale = aS
  if bS > aS then aU = aU .. string.rep('0', bS - aS); scale = bS
  elseif bS < aS then bU = bU .. string.rep('0', aS - bS) end
  if #aU < 16 and #bU < 16 then
    local sum = tonumber(aU) + tonumber(bU)
    if sum == 0 then return '0', scale end
    return string.format('%.0f', sum), scale
  end
  return decimalAdd(aU, bU), scale
end

local entries = 0
local quiet = {}
-- Entries of a view are numbered without gaps (n): a reader that sees a gap knows the changelog
-- was trimmed past what it had, and starts over instead of missing changes silently.
local seqs = {}
local function nextSeq(view)
  local n = seqs[view] or tonumber(redis.call('HGET', seqKey(), view) or '0')
  n = n + 1
  seqs[view] = n
  return n
end
local function logChange(view, o, key, row, prev)
  if quiet[view] then return end
  redis.call('XADD', changelogKey(view), 'MAXLEN', '~', MAXLEN, '*', 'o', o, 'k', key, 'r', row, 'p', prev, 'n', nextSeq(view))
  entries = entries + 1
end
-- A view's history starts over here: subscribers from before it get a reset, then a snapshot.
local function logReset(view, why)
  local id = redis.call('XADD', changelogKey(view), 'MAXLEN', '~', MAXLEN, '*', 'o', 'reset', 'why', why, 'n', nextSeq(view))
  redis.call('HSET', metaKey(), 'floor:' .. view, id)
  entries = entries + 1
end

local function writeRow(view, key, old, json)
  if old == json then return end
  redis.call('HSET', rowsKey(view), key, json)
  if not old then redis.call('ZADD', indexKey(view), 0, key) end
  logChange(view, old and 'u' or 'i', key, json, old or '')
end

local function deleteRow(view, key, old, isAggregate)
  if not old then return end
  redis.call('HDEL', rowsKey(view), key)
  redis.call('ZREM', indexKey(view), key)
  if isAggregate then redis.call('DEL', candidatesKey(view, key), candidateCountsKey(view, key)) end
  logChange(view, 'd', key, '', old)
end

-- 1. One writer, and Redis still holding what this writer last wrote.
local LEASE, STEP, STEP_ID, PART, PART_FINAL = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local lease = redis.call('GET', leaseKey())
local step = redis.call('HGET', checkpointKey(), '~step')
if lease ~= LEASE then
  if not lease and not step then return {'lost', ''} end
  return {'fenced', lease or ''}
end
if redis.call('HGET', checkpointKey(), '~last') == STEP_ID then return {'dup', 'retried', step} end
if step ~= STEP then return {'lost', step or ''} end

-- 2. Effectively-once: skip a batch whose position is already stored (tokens are fixed-width digits).
local npos = tonumber(ARGV[8])
local i = 9
local seen = 0
local probe = PART ~= '' and not PART_FINAL
for _ = 1, npos do
  local stored = redis.call('HGET', checkpointKey(), ARGV[i])
  if stored and #stored == #ARGV[i + 1] then
    local c = compareDigits(ARGV[i + 1], stored)
    if c < 0 or (c == 0 and not probe) then seen = seen + 1 end
  end
  i = i + 2
end
if npos > 0 and seen == npos then return {'dup', tostring(seen)} end
if seen > 0 then return redis.error_reply('apply: batch straddles the stored checkpoint (' .. seen .. ' of ' .. npos .. ' positions already applied)') end
if PART ~= '' then
  local pending = redis.call('HGET', checkpointKey(), '~pending')
  if pending then
    local txn, n = string.match(PART, '^(.*):(%d+)$')
    local ptxn, pn = string.match(pending, '^(.*):(%d+)$')
    if txn == ptxn and tonumber(n) <= tonumber(pn) then return {'dup', 'part'} end
  end
end
local posAt = 9
local nquiet = tonumber(ARGV[i])
for q = i + 1, i + nquiet do quiet[ARGV[q]] = true end
i = i + 1 + nquiet
local nbusy = tonumber(ARGV[i])
for b = i + 1, i + nbusy do
  quiet[ARGV[b]] = true
  redis.call('HSET', busyKey(), ARGV[b], PART)
end
i = i + 1 + nbusy
local nlive = tonumber(ARGV[i])
local liveAt = i + 1
i = liveAt + 2 * nlive

-- 3. Row images (at-least-once sources): every image must still be what the planner read.
local nclear = tonumber(ARGV[i])
local clearAt = i + 1
i = clearAt + nclear
local nimg = tonumber(ARGV[i])
local imgAt = i + 1
for m = 0, nimg - 1 do
  local expected = ARGV[imgAt + 4 * m + 2]
  if expected ~= '-' then
    local now = redis.call('HGET', imagesKey(ARGV[imgAt + 4 * m]), ARGV[imgAt + 4 * m + 1])
    if (expected == '0' and now) or (expected ~= '0' and now ~= string.sub(expected, 2)) then
      return {'conflict', ARGV[imgAt + 4 * m]}
    end
  end
end

-- 4. Checks passed: from here on, everything is written.
local newStep = tostring(tonumber(STEP) + 1)
redis.call('HSET', checkpointKey(), '~step', newStep, '~last', STEP_ID)
if not probe then
  for p = 0, npos - 1 do redis.call('HSET', checkpointKey(), ARGV[posAt + 2 * p], ARGV[posAt + 1 + 2 * p]) end
end
if PART ~= '' and not PART_FINAL then redis.call('HSET', checkpointKey(), '~pending', PART) end
for c = 0, nclear - 1 do redis.call('DEL', imagesKey(ARGV[clearAt + c])) end
for m = 0, nimg - 1 do
  redis.call('HSET', imagesKey(ARGV[imgAt + 4 * m]), ARGV[imgAt + 4 * m + 1], ARGV[imgAt + 4 * m + 3])
end
i = imgAt + 4 * nimg

-- 5. The view operations, in order.
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'U' then
    local view, key, json = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    writeRow(view, key, redis.call('HGET', rowsKey(view), key) or nil, json)
    i = i + 4
  elseif op == 'D' then
    local view, key = ARGV[i + 1], ARGV[i + 2]
    deleteRow(view, key, redis.call('HGET', rowsKey(view), key) or nil, false)
    i = i + 3
  elseif op == 'A' then
    local view, key, groupJson = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local dRows, nacc = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
    i = i + 6
    local old = redis.call('HGET', rowsKey(view), key) or nil
    local state = old and cjson.decode(old) or nil
    local rows = (state and tonumber(state.n) or 0) + dRows
    local accs = {}
    for a = 1, nacc do
      local kind = ARGV[i]
      local prev = state and state.a[a] or nil
      if kind == 'c' then
        accs[a] = tostring((tonumber(prev) or 0) + tonumber(ARGV[i + 1]))
        i = i + 2
      elseif kind == 's' then
        local count = (prev and tonumber(prev[3]) or 0) + tonumber(ARGV[i + 3])
        local unscaled, scale = '0', 0
        if count ~= 0 then
          unscaled, scale = addScaled(prev and prev[1] or '0', prev and tonumber(prev[2]) or 0, ARGV[i + 1], tonumber(ARGV[i + 2]))
        end
        local scales = prev and prev[4] or {}
        local n = tonumber(ARGV[i + 4])
        for s = 0, n - 1 do
          local sc = ARGV[i + 5 + 2 * s]
          local left = (tonumber(scales[sc]) or 0) + tonumber(ARGV[i + 6 + 2 * s])
          scales[sc] = left ~= 0 and left or nil
        end
        if next(scales) == nil then scales = EMPTY_OBJECT end
        accs[a] = {unscaled, scale, tostring(count), scales}
        i = i + 5 + 2 * n
      elseif kind == 'f' then
        local count = (prev and tonumber(prev[2]) or 0) + tonumber(ARGV[i + 2])
        local sum = count == 0 and '0' or string.format('%.17g', tonumber(prev and prev[1] or '0') + tonumber(ARGV[i + 1]))
        accs[a] = {sum, tostring(count)}
        i = i + 3
      else
        -- Candidates: a lex-ordered set per group; a value present k > 1 times also has k - 1
        -- in the duplicates hash, so unique values (the common case) cost one member.
        local wantMin, wantMax = ARGV[i + 1] == '1', ARGV[i + 2] == '1'
        local n = tonumber(ARGV[i + 3])
        local tag = tostring(a) .. ':'
        local candidates, duplicates = candidatesKey(view, key), candidateCountsKey(view, key)
        for m = 0, n - 1 do
          local member, d = tag .. ARGV[i + 4 + 2 * m], tonumber(ARGV[i + 5 + 2 * m])
          if d > 0 then
            local extra = d - redis.call('ZADD', candidates, 'NX', 0, member)
            if extra > 0 then redis.call('HINCRBY', duplicates, member, extra) end
          elseif d < 0 then
            local extra = tonumber(redis.call('HGET', duplicates, member)) or 0
            if extra + d > 0 then redis.call('HINCRBY', duplicates, member, d)
            else
              if extra > 0 then redis.call('HDEL', duplicates, member) end
              if extra + d < 0 then redis.call('ZREM', candidates, member) end
            end
          end
        end
        i = i + 4 + 2 * n
        if prev and n == 0 then
          accs[a] = prev
        else
          local lo, hi = cjson.null, cjson.null
          if wantMin then
            local found = redis.call('ZRANGEBYLEX', candidates, '[' .. tag, '(' .. tag .. '\\255', 'LIMIT', 0, 1)
            if found[1] then lo = string.sub(found[1], #tag + 1) end
          end
          if wantMax then
            local found = redis.call('ZREVRANGEBYLEX', candidates, '(' .. tag .. '\\255', '[' .. tag, 'LIMIT', 0, 1)
            if found[1] then hi = string.sub(found[1], #tag + 1) end
          end
          accs[a] = {lo, hi}
        end
      end
    end
    if rows <= 0 then
      deleteRow(view, key, old, true)
    else
      local encoded = nacc > 0 and cjson.encode(accs) or '[]'
      writeRow(view, key, old, '{"g":' .. groupJson .. ',"n":"' .. tostring(rows) .. '","a":' .. encoded .. '}')
    end
  elseif op == 'X' then
    local view, isAggregate = ARGV[i + 1], ARGV[i + 2] == '1'
    local all = redis.call('HGETALL', rowsKey(view))
    for r = 1, #all, 2 do deleteRow(view, all[r], all[r + 1], isAggregate) end
    i = i + 3
  elseif op == 'Q' then
    redis.call('XADD', deadLetterKey(), 'MAXLEN', '~', 100000, '*', 'reason', ARGV[i + 1], 'change', ARGV[i + 2])
    i = i + 3
  else
    return redis.error_reply('apply: unknown op ' .. tostring(op) .. ' at ' .. i)
  end
end

-- 6. A transaction applied in parts is complete: each view it touched starts a new history.
if PART_FINAL then
  local touched = redis.call('HKEYS', busyKey())
  for _, view in ipairs(touched) do logReset(view, 'a transaction too large to log row by row (' .. PART .. ' parts)') end
  redis.call('DEL', busyKey())
  redis.call('HDEL', checkpointKey(), '~pending')
end
for l = 0, nlive - 1 do
  local view = ARGV[liveAt + 2 * l]
  redis.call('HSET', metaKey(), 'status:' .. view, ARGV[liveAt + 2 * l + 1])
  logReset(view, 'the view was built')
end
for view, n in pairs(seqs) do redis.call('HSET', seqKey(), view, n) end
return {'ok', entries, newStep}
`;

/**
 * A view may be read only when it is live, holds the definition the reader expects (another
 * version of the service may be writing it), and is not in the middle of a transaction applied in
 * parts. Shared by the read scripts: returns early with the reason when not.
 */
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
