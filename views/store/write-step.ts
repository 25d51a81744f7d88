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
 * ops: every op in one MessagePack array (cmsgpack.unpack in the script), packed into one Buffer as
 * the step is planned (StepWrites): a step carries hundreds of thousands of items, and an argument
 * each would cost the client a string and a copy per item. Op codes, KEYS indexes and counts are
 * integers, which the script reads without making a Lua string of each (10–15 % less Redis time
 * than all strings).
 *
 *   op = HSET k field value | HDEL k field | ZADD k member | ZREM k member | DEL k
 *      | XADD k maxlen nfields field… floorK floorField      (floorK 0: none)
 *      | ENTRY k maxlen o key row prev n e                    (a row's changelog entry, fields implied; e 0|1)
 *      | MADD k extrasK member n | MREM k extrasK member n   (multiset add / remove n copies)
 *      | DEAD reason payload                                  (dead letter)
 *   (the names are the integer codes of OP). k = index into KEYS. KEYS[1..6] = lease, checkpoint,
 *   meta, busy, dead letters, parts; images by name.
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

/** The write step's op codes (integers in the ops array). */
const OP = { HSET: 1, HDEL: 2, ZADD: 3, ZREM: 4, DEL: 5, XADD: 6, ENTRY: 7, MADD: 8, MREM: 9, DEAD: 10 } as const;

export const WRITE_STEP_SCRIPT = `
local LEASE, STEP, STEP_ID, PART, PART_FINAL = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local CHECKPOINT, META, BUSY, DLQ, PARTS = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- A changelog entry; a max length of 0: never trimmed here (reactions read it; they trim it).
local function xadd(key, maxlen, fields)
  if maxlen == 0 then return redis.call('XADD', key, '*', unpack(fields)) end
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
-- 5. The planned writes, in order (one MessagePack array: see StepWrites).
local OPS = cmsgpack.unpack(ARGV[imgAt + 4 * nimg])
i = 1
local entries = 0
local nops = #OPS
while i <= nops do
  local op = OPS[i]
  if op == ${OP.HSET} then
    redis.call('HSET', KEYS[OPS[i + 1]], OPS[i + 2], OPS[i + 3])
    i = i + 4
  elseif op == ${OP.HDEL} then
    redis.call('HDEL', KEYS[OPS[i + 1]], OPS[i + 2])
    i = i + 3
  elseif op == ${OP.ZADD} then
    redis.call('ZADD', KEYS[OPS[i + 1]], 0, OPS[i + 2])
    i = i + 3
  elseif op == ${OP.ZREM} then
    redis.call('ZREM', KEYS[OPS[i + 1]], OPS[i + 2])
    i = i + 3
  elseif op == ${OP.DEL} then
    redis.call('DEL', KEYS[OPS[i + 1]])
    i = i + 2
  elseif op == ${OP.ENTRY} then
    local k = KEYS[OPS[i + 1]]
    if OPS[i + 8] == 1 then
      xadd(k, OPS[i + 2], {'o', OPS[i + 3], 'k', OPS[i + 4], 'r', OPS[i + 5], 'p', OPS[i + 6], 'n', OPS[i + 7], 'e', '1'})
    else
      xadd(k, OPS[i + 2], {'o', OPS[i + 3], 'k', OPS[i + 4], 'r', OPS[i + 5], 'p', OPS[i + 6], 'n', OPS[i + 7]})
    end
    entries = entries + 1
    i = i + 9
  elseif op == ${OP.XADD} then
    local n = OPS[i + 3]
    local fields = {}
    for f = 1, n do fields[f] = OPS[i + 3 + f] end
    local id = xadd(KEYS[OPS[i + 1]], OPS[i + 2], fields)
    local floorKey = OPS[i + 4 + n]
    if floorKey > 0 then redis.call('HSET', KEYS[floorKey], OPS[i + 5 + n], id) end
    entries = entries + 1
    i = i + 6 + n
  elseif op == ${OP.MADD} then
    local zkey, extras, member, n = KEYS[OPS[i + 1]], KEYS[OPS[i + 2]], OPS[i + 3], OPS[i + 4]
    local extra = n - redis.call('ZADD', zkey, 'NX', 0, member)
    if extra > 0 then redis.call('HINCRBY', extras, member, extra) end
    i = i + 5
  elseif op == ${OP.MREM} then
    local zkey, extras, member, n = KEYS[OPS[i + 1]], KEYS[OPS[i + 2]], OPS[i + 3], OPS[i + 4]
    local extra = tonumber(redis.call('HGET', extras, member)) or 0
    if extra > n then redis.call('HINCRBY', extras, member, -n)
    else
      if extra > 0 then redis.call('HDEL', extras, member) end
      if extra < n then redis.call('ZREM', zkey, member) end
    end
    i = i + 5
  elseif op == ${OP.DEAD} then
    redis.call('XADD', DLQ, 'MAXLEN', '~', 100000, '*', 'reason', OPS[i + 1], 'change', OPS[i + 2])
    i = i + 3
  else
    return redis.error_reply('write step: unknown op ' .. tostring(op) .. ' at ' .. i)
  end
end
return {'ok', entries, newStep}
`;

/** KEYS and ARGV of one write step, and its ops packed (exported for tests of the encoding). */
export function encodeStep(
  prefix: string,
  control: StepControl,
  position: SourcePosition,
  writes: StepWrites,
  deadLetters: readonly DeadLetter[],
  images: ImageWrites | null,
): { keys: string[]; args: string[]; ops: Buffer } {
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
  const cleared = [...(images?.clear ?? [])].map((table) => String(writes.key(imagesKey(prefix, table))));
  args.push(String(cleared.length), ...cleared);
  const imageArgs: string[] = [];
  for (const [table, entries] of images?.set ?? []) {
    const key = String(writes.key(imagesKey(prefix, table)));
    for (const [field, { expected, value }] of entries)
      imageArgs.push(key, field, expected === null ? '-' : expected === '' ? '0' : `=${expected}`, value);
  }
  args.push(String(imageArgs.length / 4), ...imageArgs);
  const keys = [...writes.keys];
  keys.splice(
    0,
    CONTROL_KEYS,
    leaseKey(prefix),
    checkpointKey(prefix),
    metaKey(prefix),
    busyKey(prefix),
    deadLetterKey(prefix),
    partsKey(prefix),
  );
  return { keys, args, ops: writes.pack(deadLetters) };
}

/** KEYS[1..6]: lease, checkpoint, meta, busy, dead letters, parts (encodeStep fills them in). */
const CONTROL_KEYS = 6;

/**
 * A step's writes, packed as they are planned, with the keys they name. A planned write becomes
 * bytes at once instead of an object and strings kept until the step is sent: those outlived
 * young-generation collections, which copied them, then promoted them to the old generation.
 */
export class StepWrites {
  /** KEYS of the step: the control keys' slots first, then every key a write names. */
  readonly keys: string[] = Array.from({ length: CONTROL_KEYS }, () => '');
  private readonly index = new Map<string, number>();
  private readonly ops = new OpsPacker();
  /** Writes packed. */
  length = 0;
  /** Changelog entries among them. */
  entries = 0;

  static of(writes: readonly WriteOp[]): StepWrites {
    const packed = new StepWrites();
    for (const w of writes) packed.add(w);
    return packed;
  }

  /** A key's index in KEYS (1-based, as Lua sees it). */
  key(key: string): number {
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.keys.push(key);
      this.index.set(key, i);
    }
    return i;
  }

  /** Any write (tests and `of` use this; the state store calls the typed methods below). */
  add(w: WriteOp): void {
    switch (w.op) {
      case 'hset':
        return this.hset(w.key, w.field, w.value);
      case 'hdel':
        return this.hdel(w.key, w.field);
      case 'zadd':
        return this.zadd(w.key, w.member);
      case 'zrem':
        return this.zrem(w.key, w.member);
      case 'del':
        return this.del(w.key);
      case 'xadd':
        return this.xadd(w.key, w.maxLength, w.fields, w.floor);
      case 'madd':
      case 'mrem':
        return this.multiset(w.op, w.key, w.extras, w.member, w.n);
    }
  }

  hset(key: string, field: string, value: string): void {
    this.ops.int(OP.HSET).int(this.key(key)).str(field).str(value);
    this.length++;
  }

  hdel(key: string, field: string): void {
    this.ops.int(OP.HDEL).int(this.key(key)).str(field);
    this.length++;
  }

  zadd(key: string, member: string): void {
    this.ops.int(OP.ZADD).int(this.key(key)).str(member);
    this.length++;
  }

  zrem(key: string, member: string): void {
    this.ops.int(OP.ZREM).int(this.key(key)).str(member);
    this.length++;
  }

  del(key: string): void {
    this.ops.int(OP.DEL).int(this.key(key));
    this.length++;
  }

  /** A changelog entry (see WriteOp 'xadd'); a row's entry is packed without its field names. */
  xadd(key: string, maxLength: number, f: readonly string[], floor?: { readonly key: string; readonly field: string }): void {
    const ops = this.ops;
    this.entries++;
    this.length++;
    if (floor === undefined && isRowEntry(f)) {
      ops.int(OP.ENTRY).int(this.key(key)).int(maxLength);
      ops.str(f[1]!).str(f[3]!).str(f[5]!).str(f[7]!).str(f[9]!).int(f.length === 12 ? 1 : 0);
      return;
    }
    ops.int(OP.XADD).int(this.key(key)).int(maxLength).int(f.length);
    for (const field of f) ops.str(field);
    ops.int(floor ? this.key(floor.key) : 0).str(floor?.field ?? '');
  }

  /** n copies of a member entering ('madd') or leaving ('mrem') a multiset (see WriteOp). */
  multiset(op: 'madd' | 'mrem', key: string, extras: string, member: string, n: number): void {
    this.ops.int(op === 'madd' ? OP.MADD : OP.MREM).int(this.key(key)).int(this.key(extras));
    this.ops.str(member).int(n);
    this.length++;
  }

  /** The ops array, dead letters last. Packing again gives the same bytes (a step may be sent twice). */
  pack(deadLetters: readonly DeadLetter[]): Buffer {
    if (deadLetters.length === 0) return this.ops.finish();
    const tail = new OpsPacker();
    for (const letter of deadLetters) tail.int(OP.DEAD).str(letter.reason).str(letter.payload);
    return this.ops.finish(tail);
  }

  /** The writes as WriteOps again, in order (for MemoryRedis, which applies them in tests). */
  decode(): WriteOp[] {
    const items = unpackItems(this.ops.finish());
    const key = (i: number): string => this.keys[(items[i] as number) - 1]!;
    const text = (i: number): string => items[i] as string;
    const writes: WriteOp[] = [];
    for (let i = 0; i < items.length; ) {
      switch (items[i]) {
        case OP.HSET:
          writes.push({ op: 'hset', key: key(i + 1), field: text(i + 2), value: text(i + 3) });
          i += 4;
          break;
        case OP.HDEL:
          writes.push({ op: 'hdel', key: key(i + 1), field: text(i + 2) });
          i += 3;
          break;
        case OP.ZADD:
        case OP.ZREM:
          writes.push({ op: items[i] === OP.ZADD ? 'zadd' : 'zrem', key: key(i + 1), member: text(i + 2) });
          i += 3;
          break;
        case OP.DEL:
          writes.push({ op: 'del', key: key(i + 1) });
          i += 2;
          break;
        case OP.ENTRY: {
          const fields = ['o', text(i + 3), 'k', text(i + 4), 'r', text(i + 5), 'p', text(i + 6)];
          fields.push('n', text(i + 7));
          if (items[i + 8] === 1) fields.push('e', '1');
          writes.push({ op: 'xadd', key: key(i + 1), maxLength: items[i + 2] as number, fields });
          i += 9;
          break;
        }
        case OP.XADD: {
          const n = items[i + 3] as number;
          const floor = items[i + 4 + n] as number;
          writes.push({
            op: 'xadd',
            key: key(i + 1),
            maxLength: items[i + 2] as number,
            fields: items.slice(i + 4, i + 4 + n) as string[],
            ...(floor > 0 ? { floor: { key: this.keys[floor - 1]!, field: text(i + 5 + n) } } : {}),
          });
          i += 6 + n;
          break;
        }
        case OP.MADD:
        case OP.MREM:
          writes.push({
            op: items[i] === OP.MADD ? 'madd' : 'mrem',
            key: key(i + 1),
            extras: key(i + 2),
            member: text(i + 3),
            n: items[i + 4] as number,
          });
          i += 5;
          break;
        default:
          throw new Error(`StepWrites.decode: op ${String(items[i])} at ${i}`);
      }
    }
    return writes;
  }
}

/**
 * A MessagePack array of strings (fixstr or str 32) and non-negative integers (< 2³²), written
 * straight into one growing Buffer.
 */
export class OpsPacker {
  private buffer: Buffer;
  private at = 5;
  private count = 0;

  // Small to start (a slice of Node's buffer pool): a live step holds one transaction's writes,
  // and one catch-up step's megabytes are reached by doubling.
  constructor(initialBytes = 2048) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  str(item: string): this {
    const n = item.length;
    // A UTF-16 unit takes at most 3 bytes in UTF-8.
    this.reserve(5 + 3 * n);
    const buffer = this.buffer;
    if (n < 32) {
      // Most items are short ASCII (keys, members, numbers): copied here as a fixstr, 3× faster
      // than a native write each.
      let i = 0;
      let at = this.at + 1;
      for (; i < n; i++) {
        const unit = item.charCodeAt(i);
        if (unit >= 0x80) break;
        buffer[at++] = unit;
      }
      if (i === n) {
        buffer[this.at] = 0xa0 | n;
        this.at = at;
        this.count++;
        return this;
      }
    }
    buffer[this.at] = 0xdb;
    const written = buffer.write(item, this.at + 5, 'utf8');
    buffer.writeUInt32BE(written, this.at + 1);
    this.at += 5 + written;
    this.count++;
    return this;
  }

  int(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not a uint32: ${n}`);
    this.reserve(5);
    if (n < 0x80) this.buffer[this.at++] = n;
    else {
      this.buffer[this.at] = 0xce;
      this.buffer.writeUInt32BE(n, this.at + 1);
      this.at += 5;
    }
    this.count++;
    return this;
  }

  /** The array so far (more may be packed after), followed by `tail`'s items when given. */
  finish(tail?: OpsPacker): Buffer {
    const count = this.count + (tail?.count ?? 0);
    this.buffer[0] = 0xdd;
    this.buffer.writeUInt32BE(count, 1);
    const head = this.buffer.subarray(0, this.at);
    return tail ? Buffer.concat([head, tail.buffer.subarray(5, tail.at)]) : head;
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }
}

/** The items of an OpsPacker array (its subset of MessagePack: fixstr, str 32, fixint, uint 32). */
function unpackItems(buffer: Buffer): (string | number)[] {
  const items: (string | number)[] = [];
  const count = buffer.readUInt32BE(1);
  let at = 5;
  for (let i = 0; i < count; i++) {
    const head = buffer[at]!;
    if (head < 0x80) {
      items.push(head);
      at += 1;
    } else if (head === 0xce) {
      items.push(buffer.readUInt32BE(at + 1));
      at += 5;
    } else if ((head & 0xe0) === 0xa0) {
      const n = head & 0x1f;
      items.push(buffer.toString('utf8', at + 1, at + 1 + n));
      at += 1 + n;
    } else if (head === 0xdb) {
      const n = buffer.readUInt32BE(at + 1);
      items.push(buffer.toString('utf8', at + 5, at + 5 + n));
      at += 5 + n;
    } else throw new Error(`unpackItems: unexpected byte 0x${head.toString(16)} at ${at}`);
  }
  return items;
}

/** A view row's changelog entry (o k r p n [e 1], output.ts): sent as 'c', half the arguments of 'x'. */
function isRowEntry(f: readonly string[]): boolean {
  return (
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
  writes: StepWrites,
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
      ops,
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
