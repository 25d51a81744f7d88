/**
 * The scalar functions' semantics on single values, exactly PostgreSQL 15's: mod, abs, round,
 * casts, LIKE, length and date_trunc. plan/evaluate.ts handles NULL (every function here receives
 * non-null values); define.ts, registry.ts and sql.ts use the type rules at the end.
 *
 * Where PostgreSQL raises an error for a value (abs of the smallest integer, a cast out of range or
 * of text it cannot read, a LIKE pattern whose escape character ends it), these functions return
 * NULL: a view never fails on a row. Where a guard makes PostgreSQL return NULL too, sql.ts prints
 * it (`a % NULLIF(b, 0)`, `abs(NULLIF(x, -2147483648))`); the remaining cases are listed in
 * README.md ("Declaring views").
 *
 * Value representations are ingest/values.ts's: int2/int4/float4/float8 are numbers (a float4 as
 * the shortest decimal that PostgreSQL prints for it), int8 and numeric decimal strings, timestamps
 * canonical ISO text in UTC, BC dates and timestamps PostgreSQL's own text ('0044-03-15 BC').
 */
import { formatDecimal, parseDecimal, type Decimal } from '../core/decimal.ts';
import type { ColumnType, Value } from '../core/values.ts';

// ---------------------------------------------------------------------------------------------
// Types

export const INTEGER_TYPES = ['int2', 'int4', 'int8'] as const;
/** Targets of `cast(x, type)`. */
export const CAST_TARGETS = [
  'int2',
  'int4',
  'int8',
  'numeric',
  'float8',
  'text',
  'bool',
  'date',
  'timestamp',
  'timestamptz',
] as const;
export type CastTarget = (typeof CAST_TARGETS)[number];
/** Units of `dateTrunc(unit, x)`. */
export const TRUNC_UNITS = [
  'microseconds',
  'milliseconds',
  'second',
  'minute',
  'hour',
  'day',
  'week',
  'month',
  'quarter',
  'year',
] as const;
export type TruncUnit = (typeof TRUNC_UNITS)[number];

const TEXT_TYPES: readonly ColumnType[] = ['text', 'varchar', 'bpchar'];
const INTS: readonly ColumnType[] = INTEGER_TYPES;
const NUMBERS: readonly ColumnType[] = ['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'];
const TIMES: readonly ColumnType[] = ['date', 'timestamp', 'timestamptz'];

/**
 * The casts cdc-views evaluates exactly, by target: the source types each accepts. Anything else is
 * refused at validation (see `castProblem`).
 */
const CAST_SOURCES: Readonly<Record<CastTarget, readonly ColumnType[]>> = {
  int2: [...NUMBERS, ...TEXT_TYPES],
  int4: [...NUMBERS, ...TEXT_TYPES, 'bool'],
  int8: [...NUMBERS, ...TEXT_TYPES],
  numeric: [...NUMBERS, ...TEXT_TYPES],
  float8: NUMBERS,
  text: [...NUMBERS, ...TEXT_TYPES, 'bool', 'uuid', 'time', ...TIMES],
  bool: ['bool', 'int4', ...TEXT_TYPES],
  date: [...TIMES, ...TEXT_TYPES],
  timestamp: TIMES,
  timestamptz: TIMES,
};

/** Why a cast is refused, or null when it is supported. */
export function castProblem(from: ColumnType, to: string): string | null {
  if (!(CAST_TARGETS as readonly string[]).includes(to)) {
    return `Expected a cast target (${CAST_TARGETS.join(', ')}), but found '${to}'`;
  }
  if (CAST_SOURCES[to as CastTarget].includes(from)) return null;
  let hint = '';
  if (TEXT_TYPES.includes(from) && to === 'float8') hint = '; cast to numeric, then to float8';
  else if (TEXT_TYPES.includes(from) && (to === 'timestamp' || to === 'timestamptz')) {
    hint =
      "; PostgreSQL reads such text in the session's TimeZone and DateStyle, so the view could not match it";
  } else if (to === 'bool' && isInteger(from)) hint = '; PostgreSQL casts only int4 to bool';
  const sources = CAST_TARGETS.filter((t) => CAST_SOURCES[t].includes(from));
  return `Expected a cast from ${from} to ${sources.length ? sources.join(', ') : 'nothing'}, but found a cast to ${to}${hint}`;
}

/** Whether a supported cast can meet a value it cannot convert (NULL here, an error in PostgreSQL). */
export function castCanFail(from: ColumnType, to: CastTarget): boolean {
  if (from === to) return false;
  if (TEXT_TYPES.includes(from)) return to !== 'text';
  switch (to) {
    case 'int2':
      return true;
    case 'int4':
      return !(from === 'int2' || from === 'bool');
    case 'int8':
      return !(from === 'int2' || from === 'int4');
    case 'numeric':
      return from === 'float4' || from === 'float8'; // NaN and ±Infinity
    case 'float8':
      return from === 'numeric'; // beyond float8's range
    default:
      return false;
  }
}

function isInteger(t: ColumnType): boolean {
  return INTS.includes(t);
}

/**
 * The common type of CASE branches, as PostgreSQL's select_common_type folds it over the branch
 * types in its order (the ELSE first, then each WHEN): numbers widen along int2 → int4 → int8 →
 * numeric → float4 → float8; among text, varchar and bpchar, which all cast to each other
 * implicitly, the first stays (`a`). null when the types cannot meet.
 */
export function commonType(a: ColumnType, b: ColumnType): ColumnType | null {
  if (a === b) return a;
  if (NUMBERS.includes(a) && NUMBERS.includes(b)) return NUMBERS.indexOf(a) > NUMBERS.indexOf(b) ? a : b;
  if (TEXT_TYPES.includes(a) && TEXT_TYPES.includes(b)) return a;
  return null;
}

/** The type of `a % b` (int2 % int2 stays int2; otherwise as for arithmetic). */
export function modType(a: ColumnType, b: ColumnType): ColumnType {
  if (a === 'numeric' || b === 'numeric') return 'numeric';
  if (a === 'int8' || b === 'int8') return 'int8';
  if (a === 'int2' && b === 'int2') return 'int2';
  return 'int4';
}

/** The type of round(x) and round(x, digits). */
export function roundType(t: ColumnType, withDigits: boolean): ColumnType {
  return withDigits || t === 'numeric' ? 'numeric' : 'float8';
}

/** The smallest value of each integer type: abs() of it is out of range. */
export const INTEGER_MIN: Readonly<Record<string, string>> = {
  int2: '-32768',
  int4: '-2147483648',
  int8: '-9223372036854775808',
};

// ---------------------------------------------------------------------------------------------
// Numbers

const INT_BOUNDS: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int2: [-(2n ** 15n), 2n ** 15n - 1n],
  int4: [-(2n ** 31n), 2n ** 31n - 1n],
  int8: [-(2n ** 63n), 2n ** 63n - 1n],
};

function decimalOf(type: ColumnType, v: Value): Decimal {
  if (typeof v === 'number') {
    if (isInteger(type)) return { unscaled: BigInt(v), scale: 0 };
    return parseDecimal(plainNumber(v));
  }
  return parseDecimal(String(v));
}

/** A finite JS number as plain decimal text ('1e-7' → '0.0000001'). */
export function plainNumber(n: number): string {
  return formatDecimal(parseDecimal(String(n)));
}

/** An integer (as BigInt) in the representation of an integer type, or NULL when out of its range. */
function integerValue(type: ColumnType, n: bigint): Value {
  const [lo, hi] = INT_BOUNDS[type]!;
  if (n < lo || n > hi) return null;
  return type === 'int8' ? n.toString() : Number(n);
}

/** a % b: the sign of the dividend, as PostgreSQL's `%`; NULL for b = 0. */
export function modValue(type: ColumnType, a: Value, b: Value): Value {
  switch (type) {
    case 'int2':
    case 'int4': {
      const y = Number(b);
      if (y === 0) return null;
      const r = Number(a) % y;
      return r === 0 ? 0 : r; // never -0
    }
    case 'int8': {
      const y = BigInt(b as string | number);
      if (y === 0n) return null;
      return (BigInt(a as string | number) % y).toString();
    }
    default: {
      // numeric: a - trunc(a / b) * b, shown with the larger scale (PostgreSQL's mod_var)
      const x = parseDecimal(String(a));
      const y = parseDecimal(String(b));
      if (y.unscaled === 0n) return null;
      const scale = Math.max(x.scale, y.scale);
      const r = rescale(x, scale) % rescale(y, scale);
      return formatDecimal({ unscaled: r, scale });
    }
  }
}

function rescale(d: Decimal, scale: number): bigint {
  return d.unscaled * 10n ** BigInt(scale - d.scale);
}

/** abs(x) in x's type; NULL for the smallest integer of its type (PostgreSQL: out of range). */
export function absValue(type: ColumnType, v: Value): Value {
  switch (type) {
    case 'int2':
    case 'int4':
    case 'int8':
      return integerValue(type, abs(BigInt(v as string | number)));
    case 'float4':
    case 'float8':
      return Math.abs(Number(v));
    default: {
      const d = parseDecimal(String(v));
      return formatDecimal({ unscaled: abs(d.unscaled), scale: d.scale });
    }
  }
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

/**
 * round(x) and round(x, digits). numeric (and integers with digits, which PostgreSQL reads as
 * numeric) rounds half away from zero and shows `max(digits, 0)` decimals; floats (and integers
 * without digits, which PostgreSQL reads as float8) round half to even, as C's rint().
 */
export function roundValue(type: ColumnType, v: Value, digits: number | null): Value {
  if (digits === null && type !== 'numeric') return rint(toFloat8(type, v) ?? NaN);
  const scale = Math.max(-2000, Math.min(2000, digits ?? 0)); // PostgreSQL's clamp
  return formatDecimal(roundDecimal(decimalOf(type, v), scale));
}

/** Round half away from zero to `scale` decimals; a negative scale rounds to tens, hundreds… (scale 0). */
function roundDecimal(d: Decimal, scale: number): Decimal {
  if (scale >= d.scale) return { unscaled: d.unscaled * 10n ** BigInt(scale - d.scale), scale };
  const divisor = 10n ** BigInt(d.scale - scale);
  const magnitude = abs(d.unscaled);
  let q = magnitude / divisor;
  if ((magnitude % divisor) * 2n >= divisor) q += 1n;
  const signed = d.unscaled < 0n ? -q : q;
  return scale >= 0 ? { unscaled: signed, scale } : { unscaled: signed * 10n ** BigInt(-scale), scale: 0 };
}

/** C's rint(): round half to even, keeping the sign of zero. */
export function rint(x: number): number {
  if (!Number.isFinite(x)) return x;
  if (Math.abs(x - Math.trunc(x)) === 0.5) return 2 * Math.round(x / 2);
  return Math.round(x);
}

/** A number of any number type as float8 (float4 values are widened exactly); NULL beyond float8's range. */
function toFloat8(type: ColumnType, v: Value): number | null {
  if (type === 'float4') return Math.fround(Number(v));
  if (type === 'numeric' || type === 'int8') {
    const n = Number(String(v));
    // PostgreSQL's float8in refuses what overflows to ±Infinity or underflows to zero.
    if (!Number.isFinite(n) || (n === 0 && parseDecimal(String(v)).unscaled !== 0n)) return null;
    return n;
  }
  return Number(v);
}

// ---------------------------------------------------------------------------------------------
// Casts

/** CAST(v AS to) for a non-null v of type `from`; NULL where PostgreSQL would raise an error. */
export function castValue(from: ColumnType, to: ColumnType, v: Value): Value {
  if (from === to) {
    // Only the representation may need fixing (a literal '7' typed int2, a numeric literal '1e3').
    if (to === 'int2' || to === 'int4' || to === 'float4' || to === 'float8')
      return typeof v === 'number' ? v : Number(v);
    if (to === 'int8' || to === 'numeric') {
      return typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? v : formatDecimal(decimalOf(to, v));
    }
    return v;
  }
  if (TEXT_TYPES.includes(from)) {
    // bpchar to text or varchar drops its trailing spaces; the other text casts keep the text.
    if (to === 'text' || to === 'varchar' || to === 'bpchar')
      return from === 'bpchar' && to !== 'bpchar' ? String(v).replace(/ +$/, '') : v;
    return castFromText(String(v), to);
  }
  switch (to) {
    case 'int2':
    case 'int4':
    case 'int8':
      return toInteger(from, to, v);
    case 'numeric':
      return toNumeric(from, v);
    case 'float8':
      return toFloat8(from, v);
    case 'float4':
      return toFloat4(from, v);
    case 'text':
    case 'varchar':
    case 'bpchar':
      return toText(from, v);
    case 'bool':
      return from === 'bool' ? v : Number(v) !== 0;
    case 'date':
    case 'timestamp':
    case 'timestamptz': {
      if (from === to) return v;
      const t = parseTime(String(v));
      return t === null ? null : formatTime(t, to);
    }
    default:
      return v;
  }
}

function toInteger(from: ColumnType, to: ColumnType, v: Value): Value {
  switch (from) {
    case 'bool':
      return v ? 1 : 0;
    case 'int2':
    case 'int4':
    case 'int8':
      return integerValue(to, BigInt(v as string | number));
    case 'float4':
    case 'float8': {
      // rint, then the range check PostgreSQL does on the rounded double
      const r = rint(from === 'float4' ? Math.fround(Number(v)) : Number(v));
      if (!Number.isFinite(r)) return null;
      const bound = to === 'int2' ? 2 ** 15 : to === 'int4' ? 2 ** 31 : 2 ** 63;
      if (r < -bound || r >= bound) return null;
      return integerValue(to, BigInt(r));
    }
    default: {
      // numeric: half away from zero
      const d = roundDecimal(decimalOf(from, v), 0);
      return integerValue(to, d.unscaled);
    }
  }
}

function toNumeric(from: ColumnType, v: Value): Value {
  switch (from) {
    case 'float8':
    case 'float4': {
      // PostgreSQL prints the float with %.15g (float4: %.6g) and reads that as numeric.
      const x = from === 'float4' ? Math.fround(Number(v)) : Number(v);
      if (!Number.isFinite(x)) return null; // NaN, ±Infinity: numeric specials are not modelled
      return formatDecimal(minimalScale(roundSignificant(exactDecimal(x), from === 'float4' ? 6 : 15)));
    }
    default:
      return formatDecimal(decimalOf(from, v));
  }
}

/** The nearest float4 (as its canonical number: the shortest decimal PostgreSQL prints). */
function toFloat4(from: ColumnType, v: Value): Value {
  if (from === 'float8' || from === 'float4' || from === 'int2' || from === 'int4')
    return canonicalFloat4(Math.fround(Number(v)));
  const d = decimalOf(from, v);
  const f = decimalToFloat4(formatDecimal(d));
  // PostgreSQL's float4in refuses what overflows to ±Infinity or underflows to zero.
  if (!Number.isFinite(f) || (f === 0 && d.unscaled !== 0n)) return null;
  return canonicalFloat4(f);
}

/** Text in PostgreSQL's output format of the type (DateStyle ISO, TimeZone UTC). */
function toText(from: ColumnType, v: Value): Value {
  switch (from) {
    case 'bool':
      return v ? 'true' : 'false';
    case 'int2':
    case 'int4':
      return String(Number(v));
    case 'int8':
      return BigInt(v as string | number).toString();
    case 'numeric':
      return formatDecimal(decimalOf(from, v));
    case 'float8':
      return float8Text(Number(v));
    case 'float4':
      return float4Text(Math.fround(Number(v)));
    case 'bpchar':
      return String(v).replace(/ +$/, '');
    case 'date':
    case 'timestamp':
    case 'timestamptz': {
      const t = parseTime(String(v));
      return t === null ? String(v) : formatTime(t, from, true);
    }
    default:
      return String(v);
  }
}

const SPACE = '[ \\t\\n\\r\\v\\f]*'; // C's isspace()
const INT_TEXT = new RegExp(`^${SPACE}([+-]?)(\\d+)${SPACE}$`);
const NUMERIC_TEXT = new RegExp(
  `^${SPACE}([+-]?)(\\d+\\.?\\d*|\\.\\d+)(?:[eE]${SPACE}([+-]?\\d+))?${SPACE}$`,
);
const DATE_TEXT = new RegExp(`^${SPACE}(\\d{4}|[1-9]\\d{4,6})-(\\d{1,2})-(\\d{1,2})${SPACE}$`);

/**
 * Text read as PostgreSQL 15's input functions read it: int2/int4/int8 (optional sign and
 * whitespace, decimal digits only), numeric (also '.5', '5.', exponents; NaN and Infinity are
 * not modelled: NULL), bool ('t', 'yes', 'on', '1', prefixes… as boolin) and date (ISO
 * 'YYYY-MM-DD' only; PostgreSQL's other spellings give NULL). NULL where the text does not read.
 */
export function castFromText(text: string, to: ColumnType): Value {
  switch (to) {
    case 'int2':
    case 'int4':
    case 'int8': {
      const m = INT_TEXT.exec(text);
      if (!m) return null;
      return integerValue(to, BigInt(`${m[1]}${m[2]}`));
    }
    case 'numeric': {
      const m = NUMERIC_TEXT.exec(text);
      if (!m) return null;
      const [, sign, mantissa = '', exp] = m;
      const exponent = exp === undefined ? 0 : Number(exp);
      // PostgreSQL's limits: |exponent| < INT_MAX/2, at most 16383 decimals, 131072 integer digits.
      if (Math.abs(exponent) >= 2 ** 30 - 1) return null;
      const [int = '', frac = ''] = mantissa.split('.');
      const digits = `${int}${frac}`.replace(/^0+/, '');
      let scale = frac.length - exponent;
      if (Math.max(scale, 0) > 16383 || digits.length - scale > 131072) return null;
      let unscaled = BigInt(digits || '0');
      if (scale < 0) {
        unscaled *= 10n ** BigInt(-scale);
        scale = 0;
      }
      return formatDecimal({ unscaled: sign === '-' ? -unscaled : unscaled, scale });
    }
    case 'bool':
      return parseBool(text);
    case 'date': {
      const m = DATE_TEXT.exec(text);
      if (!m) return null;
      const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
      if (y < 1 || y > 5874897 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
      return formatTime({ y, mo, d, us: 0 }, 'date');
    }
    case 'text':
    case 'varchar':
    case 'bpchar':
      return text;
    default:
      return null;
  }
}

/** PostgreSQL's boolin / parse_bool_with_len. */
function parseBool(text: string): boolean | null {
  const w = text.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, '').replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (w === '') return null;
  switch (w[0]) {
    case 't':
      return 'true'.startsWith(w) ? true : null;
    case 'f':
      return 'false'.startsWith(w) ? false : null;
    case 'y':
      return 'yes'.startsWith(w) ? true : null;
    case 'n':
      return 'no'.startsWith(w) ? false : null;
    case 'o':
      // 'o' alone is ambiguous
      if (w === 'on') return true;
      if (w.length >= 2 && 'off'.startsWith(w)) return false;
      return null;
    case '1':
      return w === '1' ? true : null;
    case '0':
      return w === '0' ? false : null;
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Floats: exact decimal expansions and PostgreSQL's output format

/** The exact value of a finite double. */
export function exactDecimal(x: number): Decimal {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent: number;
  if (biased === 0) exponent = -1074;
  else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  let result: Decimal;
  if (exponent >= 0) result = { unscaled: mantissa << BigInt(exponent), scale: 0 };
  else result = { unscaled: mantissa * 5n ** BigInt(-exponent), scale: -exponent };
  return negative ? { unscaled: -result.unscaled, scale: result.scale } : result;
}

/** Round to `digits` significant digits, half to even (glibc's printf on the exact value). */
function roundSignificant(d: Decimal, digits: number): Decimal {
  const magnitude = abs(d.unscaled);
  const length = magnitude.toString().length;
  if (length <= digits) return d;
  const divisor = 10n ** BigInt(length - digits);
  let q = magnitude / divisor;
  const r = magnitude % divisor;
  if (r * 2n > divisor || (r * 2n === divisor && q % 2n === 1n)) q += 1n;
  const unscaled = q * divisor;
  return { unscaled: d.unscaled < 0n ? -unscaled : unscaled, scale: d.scale };
}

/** Drop trailing fraction zeros (never below scale 0). */
function minimalScale(d: Decimal): Decimal {
  let { unscaled, scale } = d;
  while (scale > 0 && unscaled % 10n === 0n) {
    unscaled /= 10n;
    scale--;
  }
  if (scale < 0) return { unscaled: unscaled * 10n ** BigInt(-scale), scale: 0 };
  return { unscaled, scale };
}

/** Digits (no trailing zeros) and decimal exponent of the first digit, of a positive decimal text. */
function digitsAndExponent(text: string): { digits: string; exponent: number } {
  const m = /^(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text)!;
  const int = m[1] ?? '';
  const frac = m[2] ?? '';
  const all = `${int}${frac}`;
  const lead = all.length - all.replace(/^0+/, '').length;
  const digits = all.slice(lead).replace(/0+$/, '');
  return { digits, exponent: int.length - lead - 1 + Number(m[3] ?? 0) };
}

/** PostgreSQL's float output (extra_float_digits ≥ 1, the default): shortest round-trip digits. */
function floatText(x: number, digits: string, exponent: number, fixedBelow: number): string {
  const sign = x < 0 ? '-' : '';
  if (exponent >= -4 && exponent < fixedBelow) {
    if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
    const int = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
    const frac = digits.slice(exponent + 1);
    return `${sign}${int}${frac ? `.${frac}` : ''}`;
  }
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

function specialFloatText(x: number): string | null {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  return null;
}

/** float8 as PostgreSQL 15 prints it: '1e+15', '0.0001', '1.5e-05', '-0', 'NaN'. */
export function float8Text(x: number): string {
  const special = specialFloatText(x);
  if (special !== null) return special;
  // Number#toString's digits are the shortest that read back as x, so none can be shorter.
  const start = digitsAndExponent(String(Math.abs(x))).digits.length;
  const { digits, exponent } = shortestDigits(Math.abs(x), nextFloat8, start, 17);
  return floatText(x, digits, exponent, 15);
}

/** float4 (given as the exact float4 value) as PostgreSQL prints it: shortest float4 digits. */
export function float4Text(f: number): string {
  const special = specialFloatText(f);
  if (special !== null) return special;
  const { digits, exponent } = shortestDigits(Math.abs(f), nextFloat4, 1, 9);
  return floatText(f, digits, exponent, 6);
}

/**
 * The shortest decimal strictly inside x's rounding interval, the closest to x among those (ryu as
 * PostgreSQL builds it: a decimal exactly halfway to a neighbour is not taken, although it would
 * read back as x under round-half-even; JavaScript's Number#toString takes it).
 */
function shortestDigits(
  x: number,
  next: (x: number, direction: 1 | -1) => number,
  fromPrecision: number,
  toPrecision: number,
): { digits: string; exponent: number } {
  const exact = exactDecimal(x);
  const below = next(x, -1);
  const above = next(x, 1);
  const lowNeighbour = exactDecimal(below);
  const low = midpoint(exact, lowNeighbour);
  // The largest finite value rounds up to infinity at its halfway point: as if a neighbour lay as far above.
  const high = midpoint(
    exact,
    Number.isFinite(above) ? exactDecimal(above) : sub(scaled(exact, 2n), lowNeighbour),
  );
  for (let precision = fromPrecision; precision <= toPrecision; precision++) {
    const { digits, exponent } = digitsAndExponent(x.toExponential(precision - 1));
    const base = BigInt(digits.padEnd(precision, '0'));
    const scale = precision - 1 - exponent; // candidate value = n / 10^scale
    let best: { n: bigint; distance: Decimal } | null = null;
    for (const n of [base - 1n, base, base + 1n]) {
      if (n <= 0n) continue;
      const candidate =
        scale >= 0 ? { unscaled: n, scale } : { unscaled: n * 10n ** BigInt(-scale), scale: 0 };
      if (compareDecimals(candidate, low) <= 0 || compareDecimals(candidate, high) >= 0) continue;
      const distance = absDifference(candidate, exact);
      const c = best === null ? -1 : compareDecimals(distance, best.distance);
      if (c < 0 || (c === 0 && n % 2n === 0n)) best = { n, distance };
    }
    if (best) {
      const text = best.n.toString();
      const trimmed = text.replace(/0+$/, '') || '0';
      return { digits: trimmed, exponent: text.length - 1 - scale };
    }
  }
  return digitsAndExponent(x.toExponential(toPrecision - 1)); // unreachable: toPrecision digits always fit
}

function scaled(a: Decimal, k: bigint): Decimal {
  return { unscaled: a.unscaled * k, scale: a.scale };
}

function sub(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { unscaled: rescale(a, scale) - rescale(b, scale), scale };
}

function midpoint(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  const sum = rescale(a, scale) + rescale(b, scale);
  return sum % 2n === 0n ? { unscaled: sum / 2n, scale } : { unscaled: sum * 5n, scale: scale + 1 };
}

function absDifference(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { unscaled: abs(rescale(a, scale) - rescale(b, scale)), scale };
}

function compareDecimals(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const d = rescale(a, scale) - rescale(b, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** The next double after a positive x, up or down (0 below the smallest). */
function nextFloat8(x: number, direction: 1 | -1): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + (direction > 0 ? 1n : -1n));
  return view.getFloat64(0);
}

/** The canonical number of a float4 value: what decoding PostgreSQL's text of it gives. */
export function canonicalFloat4(f: number): number {
  return Number(float4Text(Math.fround(f)));
}

/** The float4 nearest to an exact decimal (one rounding, as strtof; not via float8). ±Infinity beyond its range. */
function decimalToFloat4(text: string): number {
  const d = Number(text);
  let f = Math.fround(d);
  if (!Number.isFinite(f) || f === d) return f;
  // f and its neighbour on the other side of d bracket the value; pick by the exact midpoint.
  const other = nextFloat4(f, d > f ? 1 : -1);
  if (!Number.isFinite(other)) return f;
  const [lo, hi] = f < other ? [f, other] : [other, f];
  const mid = exactDecimal((lo + hi) / 2); // exact: a float4 midpoint needs 25 bits
  const c = compareDecimals(parseDecimal(text), mid);
  if (c < 0) f = lo;
  else if (c > 0) f = hi;
  else f = evenFloat4(lo) ? lo : hi;
  return f;
}

function nextFloat4(f: number, direction: 1 | -1): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, f);
  let bits = view.getInt32(0);
  if (f === 0) bits = direction > 0 ? 1 : -2147483647;
  else bits += f > 0 === direction > 0 ? 1 : -1;
  view.setInt32(0, bits);
  return view.getFloat32(0);
}

function evenFloat4(f: number): boolean {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, f);
  return (view.getUint32(0) & 1) === 0;
}

// ---------------------------------------------------------------------------------------------
// Text

/** length(text): characters (code points); bpchar without its trailing spaces, as PostgreSQL. */
export function lengthValue(type: ColumnType, v: Value): number {
  let text = String(v);
  if (type === 'bpchar') text = text.replace(/ +$/, '');
  let n = 0;
  for (const _ of text) n++;
  return n;
}

const PERCENT = 0x25;
const UNDERSCORE = 0x5f;
const BACKSLASH = 0x5c;
const LIKE_TRUE = 1;
const LIKE_FALSE = 0;
const LIKE_ABORT = -1;

class LikeEscapeError extends Error {}

const patternCache = new Map<string, number[]>();

function codePoints(text: string): number[] {
  const out: number[] = [];
  for (const c of text) out.push(c.codePointAt(0)!);
  return out;
}

/**
 * text LIKE pattern: `%` any sequence, `_` one character, `\` takes the next character literally.
 * A port of PostgreSQL's MatchText (like_match.c) on code points, so that even the error case
 * (an escape character at the end of the pattern, which PostgreSQL only notices when matching
 * reaches it) is the same; there, NULL.
 */
export function likeValue(text: string, pattern: string): boolean | null {
  let p = patternCache.get(pattern);
  if (!p) {
    p = codePoints(pattern);
    if (patternCache.size > 1000) patternCache.clear();
    patternCache.set(pattern, p);
  }
  try {
    return matchText(codePoints(text), 0, p, 0) === LIKE_TRUE;
  } catch (error) {
    if (error instanceof LikeEscapeError) return null;
    throw error;
  }
}

function matchText(t: readonly number[], ti: number, p: readonly number[], pi: number): number {
  const tlen = t.length;
  const plen = p.length;
  if (plen - pi === 1 && p[pi] === PERCENT) return LIKE_TRUE;
  while (ti < tlen && pi < plen) {
    const pc = p[pi];
    if (pc === BACKSLASH) {
      pi++;
      if (pi >= plen) throw new LikeEscapeError();
      if (p[pi] !== t[ti]) return LIKE_FALSE;
    } else if (pc === PERCENT) {
      pi++;
      while (pi < plen) {
        if (p[pi] === PERCENT) pi++;
        else if (p[pi] === UNDERSCORE) {
          if (ti >= tlen) return LIKE_ABORT;
          ti++;
          pi++;
        } else break;
      }
      if (pi >= plen) return LIKE_TRUE;
      let first: number;
      if (p[pi] === BACKSLASH) {
        if (plen - pi < 2) throw new LikeEscapeError();
        first = p[pi + 1]!;
      } else first = p[pi]!;
      while (ti < tlen) {
        if (t[ti] === first) {
          const matched = matchText(t, ti, p, pi);
          if (matched !== LIKE_FALSE) return matched;
        }
        ti++;
      }
      return LIKE_ABORT;
    } else if (pc === UNDERSCORE) {
      ti++;
      pi++;
      continue;
    } else if (pc !== t[ti]) {
      return LIKE_FALSE;
    }
    ti++;
    pi++;
  }
  if (ti < tlen) return LIKE_FALSE;
  while (pi < plen && p[pi] === PERCENT) pi++;
  return pi >= plen ? LIKE_TRUE : LIKE_ABORT;
}

/** Whether a pattern ends in an escape character that escapes nothing (PostgreSQL may raise an error). */
export function likePatternProblem(pattern: string): string | null {
  let escaped = false;
  for (const c of pattern) escaped = !escaped && c === '\\';
  return escaped
    ? `Expected a LIKE pattern that does not end with the escape character '\\', but found '${pattern}'`
    : null;
}

// ---------------------------------------------------------------------------------------------
// Dates and timestamps

/** A finite date/time: astronomical year (1 BC = 0), month, day, microseconds of the day. */
export interface Moment {
  readonly y: number;
  readonly mo: number;
  readonly d: number;
  readonly us: number;
}
type Time = Moment | 'infinity' | '-infinity';

const TIME_TEXT =
  /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?(?:Z|\+00(?::?00)?)?( BC)?$/;

/** A date, timestamp or timestamptz value (canonical, or PostgreSQL's text for BC) → its parts. */
export function parseTime(text: string): Time | null {
  if (text === 'infinity' || text === '-infinity') return text;
  const m = TIME_TEXT.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const us =
    ((Number(m[4] ?? 0) * 60 + Number(m[5] ?? 0)) * 60 + Number(m[6] ?? 0)) * 1_000_000 +
    Number((m[7] ?? '').padEnd(6, '0'));
  return { y: m[8] ? 1 - year : year, mo: Number(m[2]), d: Number(m[3]), us };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * A moment as a value of `type` (canonical ISO; PostgreSQL's text for BC), or, with `asText`, as
 * PostgreSQL prints it ('2024-01-02 03:04:05.5+00' for timestamptz in a UTC session).
 */
export function formatTime(t: Time, type: ColumnType, asText = false): string {
  if (typeof t === 'string') return t;
  const bc = t.y <= 0;
  const date = `${pad(bc ? 1 - t.y : t.y, 4)}-${pad(t.mo)}-${pad(t.d)}`;
  if (type === 'date') return bc ? `${date} BC` : date;
  const seconds = Math.floor(t.us / 1_000_000);
  const fraction = t.us % 1_000_000;
  let time = `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
  if (fraction) time += `.${pad(fraction, 6).replace(/0+$/, '')}`;
  const zone = type === 'timestamptz' ? (bc || asText ? '+00' : 'Z') : '';
  if (bc) return `${date} ${time}${zone} BC`;
  return `${date}${asText ? ' ' : 'T'}${time}${zone}`;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, mo: number): number {
  return mo === 2 ? (isLeap(y) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical years). */
function daysFromCivil(y: number, mo: number, d: number): number {
  const yy = mo <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const mo = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (mo <= 2 ? 1 : 0), mo, d];
}

const MINUTE = 60_000_000;
const HOUR = 60 * MINUTE;

/**
 * date_trunc(unit, x): the start of x's unit, in UTC for timestamptz ('week' starts on Monday, as
 * ISO). A date truncates as the timestamp at its midnight (the result is a timestamp). Infinity
 * stays infinity.
 */
export function dateTruncValue(unit: string, type: ColumnType, v: Value): Value {
  const t = parseTime(String(v));
  const resultType = type === 'date' ? 'timestamp' : type;
  if (t === null) return null;
  if (typeof t === 'string') return t;
  let { y, mo, d, us } = t;
  switch (unit) {
    case 'microseconds':
      break;
    case 'milliseconds':
      us -= us % 1000;
      break;
    case 'second':
      us -= us % 1_000_000;
      break;
    case 'minute':
      us -= us % MINUTE;
      break;
    case 'hour':
      us -= us % HOUR;
      break;
    case 'day':
      us = 0;
      break;
    case 'week': {
      const days = daysFromCivil(y, mo, d);
      const monday = days - ((((days + 3) % 7) + 7) % 7); // 1970-01-01 was a Thursday
      [y, mo, d] = civilFromDays(monday);
      us = 0;
      break;
    }
    case 'month':
      [d, us] = [1, 0];
      break;
    case 'quarter':
      [mo, d, us] = [3 * Math.floor((mo - 1) / 3) + 1, 1, 0];
      break;
    case 'year':
      [mo, d, us] = [1, 1, 0];
      break;
    default:
      return null;
  }
  return formatTime({ y, mo, d, us }, resultType);
}

/** A literal written for a date/time type ('2024-01-02', '2024-01-02 03:04:05+00') in canonical form, or null. */
export function canonicalTimeLiteral(text: string, type: ColumnType): string | null {
  if (text === 'infinity' || text === '-infinity') return text;
  const m =
    /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(Z|[+-]00(?::?00)?)?$/.exec(
      text.trim(),
    );
  if (!m) return null;
  if (m[8] && type !== 'timestamptz') return null;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59 || y === 0)
    return null;
  if (type === 'date' && m[4] !== undefined) return null;
  const us = ((h * 60 + mi) * 60 + s) * 1_000_000 + Number((m[7] ?? '').padEnd(6, '0'));
  return formatTime({ y, mo, d, us }, type);
}

// ---------------------------------------------------------------------------------------------
// Comparison (BETWEEN)

/**
 * The SQL order of two non-null values of comparable types, as PostgreSQL's operators pick them:
 * a float on either side compares both as float8 (a float4 widened exactly; NaN above everything;
 * see `comparisonFails` for numerics beyond float8's range),
 * numerics and integers as exact decimals, text by code point (`COLLATE "C"`) with bpchar's
 * trailing spaces ignored, dates and timestamps by time (a date at its midnight; BC and infinity
 * included).
 */
export function compareSql(typeA: ColumnType, a: Value, typeB: ColumnType, b: Value): number {
  if (NUMBERS.includes(typeA) && NUMBERS.includes(typeB)) {
    if (comparesAsFloat(typeA, typeB)) {
      const x = toFloat8(typeA, a) ?? NaN;
      const y = toFloat8(typeB, b) ?? NaN;
      if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : 1) : -1;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return compareDecimals(decimalOf(typeA, a), decimalOf(typeB, b));
  }
  if (TIMES.includes(typeA) && TIMES.includes(typeB)) {
    const x = parseTime(String(a));
    const y = parseTime(String(b));
    if (x !== null && y !== null) return compareTimes(x, y);
  }
  if (typeA === 'bool') return a === b ? 0 : a ? 1 : -1;
  const x = typeA === 'bpchar' ? String(a).replace(/ +$/, '') : String(a);
  const y = typeB === 'bpchar' ? String(b).replace(/ +$/, '') : String(b);
  if (x === y) return 0;
  return Buffer.compare(Buffer.from(x), Buffer.from(y)) < 0 ? -1 : 1;
}

function comparesAsFloat(a: ColumnType, b: ColumnType): boolean {
  return (
    NUMBERS.includes(a) &&
    NUMBERS.includes(b) &&
    (a === 'float4' || a === 'float8' || b === 'float4' || b === 'float8')
  );
}

/**
 * Whether comparing a with b raises an error in PostgreSQL: a float compared with a numeric turns
 * the numeric into float8 (its arguments are evaluated before NULLs are looked at, so a NULL on the
 * other side does not help), which fails beyond float8's range.
 */
export function comparisonFails(typeA: ColumnType, a: Value, typeB: ColumnType, b: Value): boolean {
  if (!comparesAsFloat(typeA, typeB)) return false;
  return (a !== null && toFloat8(typeA, a) === null) || (b !== null && toFloat8(typeB, b) === null);
}

function compareTimes(a: Time, b: Time): number {
  const rank = (t: Time): number => (t === '-infinity' ? -1 : t === 'infinity' ? 1 : 0);
  if (typeof a === 'string' || typeof b === 'string') return Math.sign(rank(a) - rank(b));
  return Math.sign(a.y - b.y || a.mo - b.mo || a.d - b.d || a.us - b.us);
}
