/**
 * Value order and the encodings that carry it into Redis.
 *
 * Redis orders sorted-set members with equal scores byte by byte (ZRANGEBYLEX), and that is the only
 * order a Lua script can rely on without parsing. So every value that must be ordered inside Redis
 * (view keys for cursor pagination, min/max candidates) is written as an *order key*: a string
 * whose byte order is the SQL order of the values.
 *
 *   number   'c' + exponent(4 digits, +5000) + mantissa digits        positive
 *            'b'                                                       zero
 *            'a' + (9999 - exponent) + 9-complemented digits + '~'    negative
 *   text     the text itself (UTF-8 byte order = code point order = COLLATE "C")
 *   time     ISO text with the fraction padded to 9 digits
 *   bool     'f' | 't'
 *
 * A view key is the tuple of its key values: each component tagged ('\x01' value, '\x02' NULL, so
 * NULLs sort last as in PostgreSQL) and joined with '\x00', which PostgreSQL text cannot contain.
 */
import { compareDecimal, parseDecimal } from './decimal.ts';
import { isFloatType, isNumericType, type ColumnType, type Value } from './values.ts';

/** The SQL order of two non-null values of (compatible) type `type`. */
export function compareValues(type: ColumnType, a: Value, b: Value): number {
  if (isNumericType(type)) {
    if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
    return compareDecimal(decimalText(a), decimalText(b));
  }
  if (type === 'bool') return a === b ? 0 : a ? 1 : -1;
  const x = orderKey(type, a);
  const y = orderKey(type, b);
  return compareBytes(x, y);
}

/** Compare strings by UTF-8 bytes (= code points), not UTF-16 units as `<` does. */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
const SURROGATE = /[\uD800-\uDFFF]/;

/** A string whose byte order is the SQL order of non-null values of `type`. */
export function orderKey(type: ColumnType, value: Value): string {
  if (value === null) throw new TypeError('orderKey of NULL');
  if (isNumericType(type)) {
    if (typeof value === 'number' && Number.isSafeInteger(value)) return integerOrderKey(value);
    return numberOrderKey(decimalText(value));
  }
  switch (type) {
    case 'bool':
      return value ? 't' : 'f';
    case 'timestamp':
    case 'timestamptz':
    case 'time':
      return padFraction(String(value));
    default:
      return String(value);
  }
}

/** A number's text for exact comparison ('NaN' numeric, like float NaN, above every number). */
function decimalText(v: Value): string {
  return typeof v === 'number' ? numberText(v) : v === 'NaN' ? numberText(NaN) : String(v);
}

function numberText(n: number): string {
  if (Number.isNaN(n)) return '1e9999'; // PostgreSQL sorts NaN above every number
  if (n === Infinity) return '1e9000';
  if (n === -Infinity) return '-1e9000';
  return String(n);
}

/** numberOrderKey for a safe integer, without parsing its text (keys are mostly integers). */
function integerOrderKey(n: number): string {
  if (n === 0) return 'b';
  const digits = String(n < 0 ? -n : n);
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  const mantissa = end === digits.length ? digits : digits.slice(0, end);
  if (n > 0) return `c${digits.length + 5000}${mantissa}`;
  let complement = '';
  for (let i = 0; i < mantissa.length; i++) complement += String.fromCharCode(105 - mantissa.charCodeAt(i)); // '9' - d
  return `a${9999 - (digits.length + 5000)}${complement}~`;
}

function numberOrderKey(text: string): string {
  let negative: boolean;
  let digits: string;
  let scale: number;
  const plain = plainDecimal(text);
  if (plain !== null) {
    [negative, digits, scale] = plain;
    if (digits === '') return 'b';
  } else {
    const parsed = parseDecimal(text);
    if (parsed.unscaled === 0n) return 'b';
    negative = parsed.unscaled < 0n;
    digits = (negative ? -parsed.unscaled : parsed.unscaled).toString();
    scale = parsed.scale;
  }
  // value = 0.<digits> × 10^exponent
  const exponent = digits.length - scale;
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === 48) end--;
  const mantissa = end === digits.length ? digits : digits.slice(0, end);
  if (!negative) return `c${String(exponent + 5000).padStart(4, '0')}${mantissa}`;
  let complement = '';
  for (let i = 0; i < mantissa.length; i++) complement += String.fromCharCode(105 - mantissa.charCodeAt(i)); // '9' - d
  return `a${String(9999 - (exponent + 5000)).padStart(4, '0')}${complement}~`;
}

/**
 * Plain decimal text ('-0012.340', '.5', '7.'): its sign, its digits without leading zeros, and its
 * scale; null for anything else (exponents, NaN: parseDecimal reads those). Scans the text once,
 * without a regular expression (numbers are ordered on every write of an ordering or min/max).
 */
function plainDecimal(text: string): [negative: boolean, digits: string, scale: number] | null {
  const n = text.length;
  let i = text.charCodeAt(0) === 45 ? 1 : 0; // '-'
  const negative = i === 1;
  while (i < n && text.charCodeAt(i) === 48) i++; // leading zeros
  const start = i;
  let dot = -1;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 && dot < 0) dot = i;
    else if (c < 48 || c > 57) return null;
  }
  if (dot < 0) return [negative, text.slice(start), 0];
  const whole = text.slice(start, dot);
  const fraction = text.slice(dot + 1);
  let digits = whole + fraction;
  if (whole === '') {
    // No integer digits: the fraction's leading zeros lead the digits too.
    let z = 0;
    while (z < digits.length && digits.charCodeAt(z) === 48) z++;
    digits = digits.slice(z);
  }
  return [negative, digits, fraction.length];
}

/** '…:05.5Z' → '…:05.500000000' so that fractions compare by position. */
function padFraction(text: string): string {
  // Without a regular expression: /^([^.Z]*)(?:\.(\d+))?(Z?)$/ → '<1>.<2 padded to 9>'.
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 90) end--; // 'Z'
  const dot = text.indexOf('.');
  const base = dot < 0 ? end : dot;
  const z = text.indexOf('Z');
  if (z >= 0 && z < base) return text;
  if (dot < 0) return `${text.slice(0, end)}.000000000`;
  if (dot + 1 >= end) return text;
  for (let i = dot + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return text;
  }
  return `${text.slice(0, dot)}.${text.slice(dot + 1, end).padEnd(9, '0')}`;
}

const VALUE_TAG = '\x01';
const NULL_TAG = '\x02';

/** The encoded key of a view row: ordered like the tuple of its key values. */
export function encodeRowKey(types: readonly ColumnType[], values: readonly Value[]): string {
  let key = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? null;
    if (i > 0) key += '\x00';
    key += v === null ? NULL_TAG : VALUE_TAG + orderKey(types[i] ?? 'text', v);
  }
  return key;
}

/**
 * A min/max candidate: the order key, then the value as text when the order key alone does not
 * give it back exactly (numbers keep their scale, floats their digits, times their zone mark).
 */
export function candidateMember(type: ColumnType, value: Value): string {
  const key = orderKey(type, value);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text === key ? key : `${key}\x00${text}`;
}

/** The value of a min/max candidate written by `candidateMember`. */
export function candidateValue(type: ColumnType, member: string): Value {
  const sep = member.indexOf('\x00');
  if (sep < 0) return type === 'bool' ? member === 't' : member;
  const text = member.slice(sep + 1);
  if (type === 'bool') return text === 'true';
  if (type === 'int2' || type === 'int4' || isFloatType(type)) return Number(JSON.parse(text));
  return text;
}

/**
 * One order term's bytes: ascending '\x01' + order key (NULL '\x02': last); descending NULL
 * '\x01' (first), else '\x02' + the order key's UTF-8 bytes in hex, each digit complemented, then
 * '~' (above every hex digit, so a longer value sorts before its prefix). Terms are joined with
 * '\x00' (below every byte a term holds), so a tuple of terms orders like SQL's ORDER BY.
 */
export function sortComponent(type: ColumnType, value: Value, desc: boolean): string {
  if (!desc) return value === null ? '\x02' : `\x01${orderKey(type, value)}`;
  if (value === null) return '\x01';
  // Each byte's hex digits inverted (15 − digit): the hex of 255 − byte.
  const bytes = Buffer.from(orderKey(type, value), 'utf8');
  for (let i = 0; i < bytes.length; i++) bytes[i] = 255 - bytes[i]!;
  return `\x02${bytes.toString('hex')}~`;
}

/** Sort terms and the view key apart in an ordering member (neither holds two '\x00' in a row). */
export const MEMBER_SEPARATOR = '\x00\x00';

/**
 * A row's member in an ordering index: its sort terms, then its view key, so byte order is
 * `ORDER BY <terms>, <key>` and ties never collide (ZRANGEBYLEX pages it; the member is the cursor).
 */
export function orderingMember(terms: readonly { readonly field: string; readonly type: ColumnType; readonly desc: boolean }[], row: Readonly<Record<string, Value>>, key: string): string {
  let sort = '';
  for (let i = 0; i < terms.length; i++) {
    const t = terms[i]!;
    if (i > 0) sort += '\x00';
    sort += sortComponent(t.type, row[t.field] ?? null, t.desc);
  }
  return `${sort}${MEMBER_SEPARATOR}${key}`;
}

/** The view key at the end of an ordering member. */
export function memberKey(member: string): string {
  return member.slice(member.indexOf(MEMBER_SEPARATOR) + MEMBER_SEPARATOR.length);
}
