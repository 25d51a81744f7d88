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

const PLAIN_DECIMAL = /^(-?)0*(\d*?)(?:\.(\d*))?$/;

function numberOrderKey(text: string): string {
  let negative: boolean;
  let digits: string;
  let scale: number;
  const m = PLAIN_DECIMAL.exec(text);
  if (m) {
    // Fast path for plain decimal text: digits and scale by string operations only.
    negative = m[1] === '-';
    const frac = m[3] ?? '';
    digits = `${m[2]}${frac}`.replace(/^0+/, '');
    scale = frac.length;
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
  const mantissa = digits.replace(/0+$/, '');
  if (!negative) return `c${String(exponent + 5000).padStart(4, '0')}${mantissa}`;
  let complement = '';
  for (let i = 0; i < mantissa.length; i++) complement += String(9 - (mantissa.charCodeAt(i) - 48));
  return `a${String(9999 - (exponent + 5000)).padStart(4, '0')}${complement}~`;
}

/** '…:05.5Z' → '…:05.500000000' so that fractions compare by position. */
function padFraction(text: string): string {
  const m = /^([^.Z]*)(?:\.(\d+))?(Z?)$/.exec(text);
  if (!m) return text;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}`;
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
  let inverted = '';
  for (const byte of Buffer.from(orderKey(type, value), 'utf8')) inverted += INVERTED_HEX[byte];
  return `\x02${inverted}~`;
}

/** Each byte's hex digits inverted (15 − digit): the hex of 255 − byte. */
const INVERTED_HEX = Array.from({ length: 256 }, (_, b) => (255 - b).toString(16).padStart(2, '0'));

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
