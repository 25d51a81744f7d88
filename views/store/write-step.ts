/**
 * The atomic write step: one Lua call per batch. The arithmetic is done (the operators planned it in
 * TypeScript); Redis checks that the step may be written, then writes everything at once — operator
 * state, view rows, changelog entries, dead letters, view statuses and the source position — so
 * readers see all of a batch or none of it (DESIGN.md §6.1), and a replay is recognised (§6.2).
 *
 * Checks, in order (nothing is written when one fails):
 *   lease      the writer's fencing token must be the lease's value       else 'fenced'
 *   ~last      this step's id already written: a retry after a lost reply  → 'dup'
 *   ~step      the step this writer last wrote: Redis must not have lost
 *              or gained steps (restart, older dump, failover)              else 'lost'
 *   positions  every position already stored: a replayed batch            → 'dup'
 *   parts      a part of a transaction applied in parts already written   → 'dup'
 *   images     row images (at-least-once sources) as the planner read them else 'conflict'
 *
 * Every key the step touches is declared in KEYS (valid on Redis Cluster: a deployment's keys share
 * one hash tag). ARGV:
 *
 *   lease step stepId part partFinal npos (stream token)×npos nbusy (view)×nbusy
 *   nmeta (field value)×nmeta nclear (table)×nclear nimg (table key expected image)×nimg ops
 *
 * ops: every op's strings in one MessagePack array (cmsgpack.unpack in the script): a step carries
 * tens of thousands of strings, and one Buffer costs the client a fraction of an argument each.
 *
 *   op = 'h' k field value | 'H' k field | 'z' k member | 'Z' k member | 'd' k
 *      | 'x' k maxlen nfields field… floorK floorField        (floorK 0: none)
 *      | 'c' k maxlen o key row prev n e                       (a row's changelog entry, fields implied)
 *      | 'm' k extrasK member n | 'M' k extrasK member n       (multiset add / remove n copies)
 *      | 'q' reason payload                                    (dead letter)
 *   k = index into KEYS. KEYS[1..6] = lease, checkpoint, meta, busy, dead letters, parts; images by name.
 */
import type { SourcePosition } from '../../ingest/change.ts';
import { RedisApplyError } from '../errors.ts';
import type { ImageWrites } from '../plan/row-images.ts';
import { busyKey, checkpointKey, deadLetterKey, imagesKey, leaseKey, metaKey, partsKey } from './keys.ts';
import type { RedisClient } from './redis.ts';
import type { WriteOp } from './state-store.ts';

export interface DeadLetter {
  readonly reason: string;
  /** The offending input, serialized (JSON), with its position. */
  readonly payload: string;
}

/** What the write step checks and marks besides the writes. */
export interface StepControl {
  /** The writer's fencing token. */
  readonly lease: string;
  /** The step the writer last wrote (0 right after a rebuild). */
  readonly step: number;
  /** Unique per step (kept across retries of it): a retry of a step that landed is recognised. */
  readonly stepId: string;
  /**
   * Part of a transaction too large for one step: the transaction, the part's id in it (unique;
   * a replay names a part the same way), and whether it is the last part.
   */
  readonly part: { readonly txn: string; readonly index: number | string; readonly final: boolean } | null;
  /** Views touched by a non-final part (readers wait until the last part). */
  readonly busy: readonly string[];
  /** Meta fields written with this step: view statuses going live or stopping (JSON), a swap's fingerprints. */
  readonly meta: readonly { readonly field: string; readonly value: string }[];
}

export type StepResult =
  | { readonly status: 'applied'; readonly step: number }
  /** Already applied: a replay (its position is stored), or an earlier attempt of this step (then `step` is where it left the counter). */
  | { readonly status: 'duplicate'; readonly step?: number }
  /** A row image changed since it was read (another writer): re-read and re-plan. */
  | { readonly status: 'conflict'; readonly table: string }
  /** Another writer holds the lease. */
  | { readonly status: 'fenced'; readonly holder: string }
  /** Redis does not hold the step this writer last wrote. */
  | { readonly status: 'lost'; readonly storedStep: string };

export const WRITE_STEP_SCRIPT = `
local LEASE, STEP, STEP_ID, PART, PART_FINAL = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local CHECKPOINT, META, BUSY, DLQ, PARTS = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- A changelog entry; a max length of 0: never trimmed here (reactions read it; they trim it).
local function xadd(key, maxlen, fields)
  if maxlen == '0' then return redis.call('XADD', key, '*', unpack(fields)) end
  return redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end

-- Fixed-width digit tokens compare as text, in 7-digit chunks (Lua numbers are doubles).
local function compareDigits(x, y)
  local pos = 1
  while pos <= #x do
    local a = tonumber(string.sub(x, pos, pos + 6))
    local b = tonumber(string.sub(y, pos, pos + 6))
    if a ~= b then return a < b and -1 or 1 end
    pos = pos + 7
  end
  return 0
end

-- 1. One writer, and Redis still holding what this writer last wrote.
local lease = redis.call('GET', KEYS[1])
local step = redis.call('HGET', CHECKPOINT, '~step')
if lease ~= LEASE then
  if not lease and not step then return {'lost', ''} end
  return {'fenced', lease or ''}
end
if redis.call('HGET', CHECKPOINT, '~last') == STEP_ID then return {'dup', 'retried', step} end
if step ~= STEP then return {'lost', step or ''} end

-- 2. Effectively once: a batch whose positions are all stored is a replay.
local npos = tonumber(ARGV[6])
local posAt = 7
local i = posAt
local seen = 0
local probe = PART ~= '' and not PART_FINAL
for _ = 1, npos do
  local stored = redis.call('HGET', CHECKPOINT, ARGV[i])
  if stored and #stored == #ARGV[i + 1] then
    local c = compareDigits(ARGV[i + 1], stored)
    if c < 0 or (c == 0 and not probe) then seen = seen + 1 end
  end
  i = i + 2
end
if npos > 0 and seen == npos then return {'dup', tostring(seen)} end
if seen > 0 then return redis.error_reply('write step: batch straddles the stored checkpoint (' .. seen .. ' of ' .. npos .. ' positions already applied)') end
if PART ~= '' and not PART_FINAL and redis.call('HEXISTS', PARTS, PART) == 1 then return {'dup', 'part'} end
local nbusy = tonumber(ARGV[i])
local busyAt = i + 1
i = busyAt + nbusy
local nmeta = tonumber(ARGV[i])
local metaAt = i + 1
i = metaAt + 2 * nmeta

-- 3. Row images (at-least-once sources): every image must still be what the planner read.
local nclear = tonumber(ARGV[i])
local clearAt = i + 1
i = clearAt + nclear
local nimg = tonumber(ARGV[i])
local imgAt = i + 1
for m = 0, nimg - 1 do
  local expected = ARGV[imgAt + 4 * m + 2]
  if expected ~= '-' then
    local now = redis.call('HGET', KEYS[tonumber(ARGV[imgAt + 4 * m])], ARGV[imgAt + 4 * m + 1])
    if (expected == '0' and now) or (expected ~= '0' and now ~= string.sub(expected, 2)) then
      return {'conflict', KEYS[tonumber(ARGV[imgAt + 4 * m])]}
    end
  end
end

-- 4. Checks passed: from here on, everything is written.
local newStep = tostring(tonumber(STEP) + 1)
redis.call('HSET', CHECKPOINT, '~step', newStep, '~last', STEP_ID)
if not probe then
  for p = 0, npos - 1 do redis.call('HSET', CHECKPOINT, ARGV[posAt + 2 * p], ARGV[posAt + 1 + 2 * p]) end
end
if probe then
  redis.call('HSET', CHECKPOINT, '~pending', PART)
  redis.call('HSET', PARTS, PART, '1')
end
for b = busyAt, busyAt + nbusy - 1 do redis.call('HSET', BUSY, ARGV[b], PART) end
if PART_FINAL then
  redis.call('DEL', BUSY, PARTS)
  redis.call('HDEL', CHECKPOINT, '~pending')
end
for s = 0, nmeta - 1 do redis.call('HSET', META, ARGV[metaAt + 2 * s], ARGV[metaAt + 2 * s + 1]) end
for c = 0, nclear - 1 do redis.call('DEL', KEYS[tonumber(ARGV[clearAt + c])]) end
for m = 0, nimg - 1 do
  redis.call('HSET', KEYS[tonumber(ARGV[imgAt + 4 * m])], ARGV[imgAt + 4 * m + 1], ARGV[imgAt + 4 * m + 3])
end
-- 5. The planned writes, in order (one MessagePack array of strings: see packStrings).
local OPS = cmsgpack.unpack(ARGV[imgAt + 4 * nimg])
i = 1
local entries = 0
while i <= #OPS do
  local op = OPS[i]
  if op == 'h' then
    redis.call('HSET', KEYS[tonumber(OPS[i + 1])], OPS[i + 2], OPS[i + 3])
    i = i + 4
  elseif op == 'H' then
    redis.call('HDEL', KEYS[tonumber(OPS[i + 1])], OPS[i + 2])
    i = i + 3
  elseif op == 'z' then
    redis.call('ZADD', KEYS[tonumber(OPS[i + 1])], 0, OPS[i + 2])
    i = i + 3
  elseif op == 'Z' then
    redis.call('ZREM', KEYS[tonumber(OPS[i + 1])], OPS[i + 2])
    i = i + 3
  elseif op == 'd' then
    redis.call('DEL', KEYS[tonumber(OPS[i + 1])])
    i = i + 2
  elseif op == 'x' then
    local n = tonumber(OPS[i + 3])
    local fields = {}
    for f = 1, n do fields[f] = OPS[i + 3 + f] end
    local id = xadd(KEYS[tonumber(OPS[i + 1])], OPS[i + 2], fields)
    local floorKey = tonumber(OPS[i + 4 + n])
    if floorKey > 0 then redis.call('HSET', KEYS[floorKey], OPS[i + 5 + n], id) end
    entries = entries + 1
    i = i + 6 + n
  elseif op == 'c' then
    local k = KEYS[tonumber(OPS[i + 1])]
    if OPS[i + 8] == '1' then
      xadd(k, OPS[i + 2], {'o', OPS[i + 3], 'k', OPS[i + 4], 'r', OPS[i + 5], 'p', OPS[i + 6], 'n', OPS[i + 7], 'e', '1'})
    else
      xadd(k, OPS[i + 2], {'o', OPS[i + 3], 'k', OPS[i + 4], 'r', OPS[i + 5], 'p', OPS[i + 6], 'n', OPS[i + 7]})
    end
    entries = entries + 1
    i = i + 9
  elseif op == 'm' then
    local zkey, extras, member, n = KEYS[tonumber(OPS[i + 1])], KEYS[tonumber(OPS[i + 2])], OPS[i + 3], tonumber(OPS[i + 4])
    local extra = n - redis.call('ZADD', zkey, 'NX', 0, member)
    if extra > 0 then redis.call('HINCRBY', extras, member, extra) end
    i = i + 5
  elseif op == 'M' then
    local zkey, extras, member, n = KEYS[tonumber(OPS[i + 1])], KEYS[tonumber(OPS[i + 2])], OPS[i + 3], tonumber(OPS[i + 4])
    local extra = tonumber(redis.call('HGET', extras, member)) or 0
    if extra > n then redis.call('HINCRBY', extras, member, -n)
    else
      if extra > 0 then redis.call('HDEL', extras, member) end
      if extra < n then redis.call('ZREM', zkey, member) end
    end
    i = i + 5
  elseif op == 'q' then
    redis.call('XADD', DLQ, 'MAXLEN', '~', 100000, '*', 'reason', OPS[i + 1], 'change', OPS[i + 2])
    i = i + 3
  else
    return redis.error_reply('write step: unknown op ' .. tostring(op) .. ' at ' .. i)
  end
end
return {'ok', entries, newStep}
`;

/** KEYS and ARGV of one write step (exported for tests of the encoding). */
export function encodeStep(
  prefix: string,
  control: StepControl,
  position: SourcePosition,
  writes: readonly WriteOp[],
  deadLetters: readonly DeadLetter[],
  images: ImageWrites | null,
): { keys: string[]; args: string[]; ops: string[] } {
  const keys = [
    leaseKey(prefix),
    checkpointKey(prefix),
    metaKey(prefix),
    busyKey(prefix),
    deadLetterKey(prefix),
    partsKey(prefix),
  ];
  const index = new Map<string, number>(keys.map((k, i) => [k, i + 1]));
  const k = (key: string): string => {
    let i = index.get(key);
    if (i === undefined) {
      i = keys.push(key);
      index.set(key, i);
    }
    return String(i);
  };
  const { part } = control;
  const args = [
    control.lease,
    String(control.step),
    control.stepId,
    part ? `${part.txn}:${part.index}` : '',
    part?.final ? '1' : '0',
  ];
  args.push(String(position.length));
  for (const { stream, token } of position) args.push(stream, token);
  args.push(String(control.busy.length), ...control.busy, String(control.meta.length));
  for (const { field, value } of control.meta) args.push(field, value);
  const cleared = [...(images?.clear ?? [])].map((table) => k(imagesKey(prefix, table)));
  args.push(String(cleared.length), ...cleared);
  const imageArgs: string[] = [];
  for (const [table, entries] of images?.set ?? []) {
    const key = k(imagesKey(prefix, table));
    for (const [field, { expected, value }] of entries)
      imageArgs.push(key, field, expected === null ? '-' : expected === '' ? '0' : `=${expected}`, value);
  }
  args.push(String(imageArgs.length / 4), ...imageArgs);
  const ops: string[] = [];
  for (const w of writes) {
    switch (w.op) {
      case 'hset':
        ops.push('h', k(w.key), w.field, w.value);
        break;
      case 'hdel':
        ops.push('H', k(w.key), w.field);
        break;
      case 'zadd':
        ops.push('z', k(w.key), w.member);
        break;
      case 'zrem':
        ops.push('Z', k(w.key), w.member);
        break;
      case 'del':
        ops.push('d', k(w.key));
        break;
      case 'xadd':
        if (isRowEntry(w)) {
          const f = w.fields;
          ops.push(
            'c',
            k(w.key),
            String(w.maxLength),
            f[1]!,
            f[3]!,
            f[5]!,
            f[7]!,
            f[9]!,
            f.length === 12 ? '1' : '0',
          );
          break;
        }
        ops.push(
          'x',
          k(w.key),
          String(w.maxLength),
          String(w.fields.length),
          ...w.fields,
          w.floor ? k(w.floor.key) : '0',
          w.floor?.field ?? '',
        );
        break;
      case 'madd':
      case 'mrem':
        ops.push(w.op === 'madd' ? 'm' : 'M', k(w.key), k(w.extras), w.member, String(w.n));
        break;
    }
  }
  for (const letter of deadLetters) ops.push('q', letter.reason, letter.payload);
  return { keys, args, ops };
}

/**
 * A MessagePack array of strings (array 32, each a str 32): written straight into one Buffer,
 * where sending each as an argument would cost a string concatenation and a copy per argument.
 */
export function packStrings(items: readonly string[]): Buffer {
  let size = 5;
  for (const item of items) size += 5 + item.length;
  let buffer = Buffer.allocUnsafe(size + (size >> 3) + 64);
  buffer[0] = 0xdd;
  buffer.writeUInt32BE(items.length, 1);
  let at = 5;
  for (const item of items) {
    // A UTF-16 unit takes at most 3 bytes in UTF-8.
    if (at + 5 + 3 * item.length > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(buffer.length * 2, at + 5 + 3 * item.length));
      buffer.copy(grown, 0, 0, at);
      buffer = grown;
    }
    buffer[at] = 0xdb;
    const written = buffer.write(item, at + 5, 'utf8');
    buffer.writeUInt32BE(written, at + 1);
    at += 5 + written;
  }
  return buffer.subarray(0, at);
}

/** A view row's changelog entry (o k r p n [e 1], output.ts): sent as 'c', half the arguments of 'x'. */
function isRowEntry(w: Extract<WriteOp, { op: 'xadd' }>): boolean {
  const f = w.fields;
  return (
    w.floor === undefined &&
    (f.length === 10 || (f.length === 12 && f[10] === 'e' && f[11] === '1')) &&
    f[0] === 'o' &&
    f[2] === 'k' &&
    f[4] === 'r' &&
    f[6] === 'p' &&
    f[8] === 'n'
  );
}

/**
 * Run one write step. EVAL (not EVALSHA): a NOSCRIPT retry would be a second command sent after
 * reads the writer already queued behind the first, and those reads must see this step.
 */
export async function writeStep(
  redis: RedisClient,
  prefix: string,
  control: StepControl,
  position: SourcePosition,
  writes: readonly WriteOp[],
  deadLetters: readonly DeadLetter[],
  images: ImageWrites | null,
): Promise<StepResult> {
  const { keys, args, ops } = encodeStep(prefix, control, position, writes, deadLetters, images);
  let reply: [string, string | number, string?];
  try {
    reply = await redis.sendCommand([
      'EVAL',
      WRITE_STEP_SCRIPT,
      String(keys.length),
      ...keys,
      ...args,
      packStrings(ops),
    ]);
  } catch (error) {
    throw new RedisApplyError(`The write step (${writes.length} writes) failed: ${String(error)}`, {
      cause: error,
    });
  }
  switch (reply[0]) {
    case 'dup':
      return reply[1] === 'retried'
        ? { status: 'duplicate', step: Number(reply[2]) }
        : { status: 'duplicate' };
    case 'conflict':
      return { status: 'conflict', table: String(reply[1]) };
    case 'fenced':
      return { status: 'fenced', holder: String(reply[1]) };
    case 'lost':
      return { status: 'lost', storedStep: String(reply[1]) };
    default:
      return { status: 'applied', step: Number(reply[2]) };
  }
}
