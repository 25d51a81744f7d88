/**
 * Value decoding per type (§3): one non-null JSON value of a Kafka Connect type or Debezium logical type → its
 * canonical value (ingest/values.ts), UNAVAILABLE for a placeholder (placeholders.ts), or INVALID.
 *
 *   int8|int16|int32     => number                   int64 => integer text (any size)
 *   float32|float64      => number | "NaN" | "Infinity" | "-Infinity"
 *   boolean              => boolean                  string => text            bytes => base64 text
 *   array|map|struct     => their JSON text, numbers exact
 *   Decimal(scale)       => base64 two's-complement unscaled | JSON number     → decimal text at the scale
 *   VariableScaleDecimal => {"scale", "value": base64}                          → decimal text
 *   Date                 => days since 1970-01-01                              → 'YYYY-MM-DD'
 *   Time|MicroTime|NanoTime => ms|µs|ns past midnight                          → 'HH:MM:SS[.f]'
 *   Timestamp|MicroTimestamp|NanoTimestamp => ms|µs|ns since the epoch, or the ±infinity sentinels
 *   ZonedTimestamp|IsoTimestamp|IsoTime    => ISO-8601 text, canonicalised
 *
 * Which decoder a field gets is schema.ts's choice; schemaless.ts reuses them for declared column types.
 */
import { UNAVAILABLE } from '../../change.ts';
import type { Unavailable } from '../../change.ts';
import { decimalFromUnscaled, formatDecimal, parseDecimal } from '../../../core/decimal.ts';
import { canonicalTime, canonicalTimestamp, timestampFromMicros } from '../../../core/values.ts';
import type { Value } from '../../../core/values.ts';
import { isObject, jsonText, numberTextOf, stringOf } from './json.ts';
import type { Json } from './json.ts';
import { isCompositePlaceholder } from './placeholders.ts';
import type { Placeholders } from './placeholders.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;
export type Decoded = Value | Unavailable | Invalid;
/** Decodes one non-null JSON value into its canonical form (values.ts), or INVALID. */
export type Decode = (raw: Json) => Decoded;

export const INTEGER_RE = /^-?\d+$/;
export const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
export const DECIMAL_TEXT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function safeIntegerOf(raw: Json): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined;
  const text = numberTextOf(raw);
  if (text === undefined || !INTEGER_RE.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Integer text of a JSON integer of any size. */
export function int64Text(raw: Json | undefined): string | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? String(raw === 0 ? 0 : raw) : undefined;
  const text = numberTextOf(raw);
  return text !== undefined && INTEGER_RE.test(text) ? text : undefined;
}

export function bigIntOf(raw: Json): bigint | undefined {
  const text = int64Text(raw);
  return text === undefined ? undefined : BigInt(text);
}

export const decodeInt32: Decode = (raw) => safeIntegerOf(raw) ?? INVALID;
export const decodeInt64: Decode = (raw) => int64Text(raw) ?? INVALID;
export const decodeBoolean: Decode = (raw) => (typeof raw === 'boolean' ? raw : INVALID);

/** A double: a JSON number, or Jackson's quoted "NaN" / "Infinity" / "-Infinity". */
export const decodeDouble: Decode = (raw) => {
  if (typeof raw === 'number') return raw;
  const number = numberTextOf(raw);
  if (number !== undefined) return Number(number);
  const text = stringOf(raw);
  return text !== undefined && NON_FINITE_NUMBERS.has(text) ? Number(text) : INVALID;
};

export const NON_FINITE_NUMBERS: ReadonlySet<string> = new Set(['NaN', 'Infinity', '-Infinity']);

export function stringDecoder(placeholder: Placeholders): Decode {
  return (raw) => {
    const text = stringOf(raw);
    return text === undefined ? INVALID : text === placeholder.text ? UNAVAILABLE : text;
  };
}

export function bytesDecoder(placeholder: Placeholders): Decode {
  return (raw) => {
    const text = stringOf(raw);
    return text === undefined
      ? INVALID
      : text === placeholder.base64 || text === placeholder.text
        ? UNAVAILABLE
        : text;
  };
}

/** Arrays, maps and structs are not modelled by values.ts: their JSON text, numbers exact (§4.2 placeholders aside). */
export function compositeDecoder(placeholder: Placeholders, type: 'array' | 'map' | 'struct'): Decode {
  return (raw) => {
    if (type === 'array' ? !Array.isArray(raw) : !isObject(raw)) return INVALID;
    return isCompositePlaceholder(raw, placeholder) ? UNAVAILABLE : jsonText(raw);
  };
}

/** Connect Decimal: base64 two's-complement unscaled bytes, or a JSON number with decimal.format=NUMERIC. */
export function decimalDecoder(scale: number): Decode {
  return (raw) => {
    const number = typeof raw === 'number' ? String(raw) : numberTextOf(raw);
    if (number !== undefined) return hasModestExponent(number) ? decimalTextAtScale(number, scale) : INVALID;
    const base64 = stringOf(raw);
    const unscaled = base64 === undefined ? undefined : unscaledFromBase64(base64);
    return unscaled === undefined ? INVALID : decimalFromUnscaled(unscaled, scale);
  };
}

export const decodeVariableScaleDecimal: Decode = (raw) => {
  if (!isObject(raw)) return INVALID;
  const scale = safeIntegerOf(raw['scale'] ?? null);
  const base64 = stringOf(raw['value']);
  const unscaled = base64 === undefined ? undefined : unscaledFromBase64(base64);
  if (scale === undefined || unscaled === undefined || Math.abs(scale) > MAX_DECIMAL_SCALE) return INVALID;
  return decimalFromUnscaled(unscaled, scale);
};

/** PostgreSQL's limit on numeric display scale; also keeps 10n ** scale cheap for hostile input. */
export const MAX_DECIMAL_SCALE = 16383;
const EXPONENT_RE = /[eE]([+-]?\d+)$/;

/** A decimal or JSON number text whose exponent stays within MAX_DECIMAL_SCALE. */
export function hasModestExponent(text: string): boolean {
  const exponent = EXPONENT_RE.exec(text);
  return exponent === null || Math.abs(Number(exponent[1])) <= MAX_DECIMAL_SCALE;
}

/** Big-endian two's complement, as java.math.BigInteger.toByteArray writes it. */
function unscaledFromBase64(base64: string): bigint | undefined {
  if (base64.length === 0 || !BASE64_RE.test(base64)) return undefined;
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length <= 6) return BigInt(bytes.readIntBE(0, bytes.length));
  return BigInt.asIntN(bytes.length * 8, BigInt(`0x${bytes.toString('hex')}`));
}

/** Exact decimal text, with at least `scale` fraction digits (a JSON number drops trailing zeros). */
function decimalTextAtScale(text: string, scale: number): string {
  const decimal = parseDecimal(text);
  return decimal.scale >= scale
    ? formatDecimal(decimal)
    : formatDecimal({ unscaled: decimal.unscaled * 10n ** BigInt(scale - decimal.scale), scale });
}

const MS_PER_DAY = 86_400_000;
const MAX_DATE_MS = 8.64e15;

export const decodeDays: Decode = (raw) => {
  const days = safeIntegerOf(raw);
  return days === undefined ? INVALID : (dateFromDays(days) ?? INVALID);
};

function dateFromDays(days: number): string | undefined {
  const ms = days * MS_PER_DAY;
  if (!(Math.abs(ms) <= MAX_DATE_MS)) return undefined;
  const iso = new Date(ms).toISOString();
  return iso.slice(0, iso.indexOf('T'));
}

export function timeOfDayDecoder(unitsPerSecond: number, digits: number): Decode {
  return (raw) => {
    const units = safeIntegerOf(raw);
    return units === undefined ? INVALID : (timeOfDay(units, unitsPerSecond, digits) ?? INVALID);
  };
}

/** 'HH:MM:SS[.f…]' with trailing fraction zeros dropped, like canonicalTime. 24:00:00 is allowed (PostgreSQL). */
function timeOfDay(units: number, unitsPerSecond: number, digits: number): string | undefined {
  if (units < 0 || units > 86_400 * unitsPerSecond) return undefined;
  const seconds = Math.floor(units / unitsPerSecond);
  const fraction = units - seconds * unitsPerSecond;
  const hh = Math.floor(seconds / 3600);
  const mm = Math.floor(seconds / 60) % 60;
  const ss = seconds % 60;
  return `${twoDigits(hh)}:${twoDigits(mm)}:${twoDigits(ss)}${fractionText(fraction, digits)}`;
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function fractionText(fraction: number | bigint, digits: number): string {
  if (fraction === 0 || fraction === 0n) return '';
  return `.${String(fraction).padStart(digits, '0').replace(/0+$/, '')}`;
}

/** PostgreSQL ±infinity timestamps, as Debezium encodes them in every timestamp precision (§3). */
const POSITIVE_INFINITY_TIMESTAMP = 9223372036825200000n;
const NEGATIVE_INFINITY_TIMESTAMP = -9223372036832400000n;
export const MAX_TIMESTAMP_MICROS = 8_640_000_000_000_000_000n;

function infinityOf(units: bigint): string | undefined {
  return units === POSITIVE_INFINITY_TIMESTAMP
    ? 'infinity'
    : units === NEGATIVE_INFINITY_TIMESTAMP
      ? '-infinity'
      : undefined;
}

/** Timestamp (ms) or MicroTimestamp (µs): a wall-clock time encoded as if UTC, printed without a zone. */
export function timestampDecoder(microsPerUnit: bigint): Decode {
  return (raw) => {
    const units = bigIntOf(raw);
    if (units === undefined) return INVALID;
    const infinity = infinityOf(units);
    if (infinity !== undefined) return infinity;
    const micros = units * microsPerUnit;
    if (micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS) return INVALID;
    return timestampFromMicros(micros, false);
  };
}

/** NanoTimestamp keeps all 9 fraction digits (trailing zeros dropped). */
export const decodeNanoTimestamp: Decode = (raw) => {
  const nanos = bigIntOf(raw);
  if (nanos === undefined) return INVALID;
  const infinity = infinityOf(nanos);
  if (infinity !== undefined) return infinity;
  let seconds = nanos / 1_000_000_000n;
  if (nanos % 1_000_000_000n < 0n) seconds -= 1n;
  const micros = seconds * 1_000_000n;
  if (micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS) return INVALID;
  return `${timestampFromMicros(micros, false)}${fractionText(nanos - seconds * 1_000_000_000n, 9)}`;
};

export const zonedTimestamp: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : checkedTimestamp(text, true);
};
export const isoTimestamp: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : checkedTimestamp(text, false);
};

/** canonicalTimestamp, or INVALID where it throws (an impossible date with an offset: '2023-13-45T…+01'). */
export function checkedTimestamp(text: string, zoned: boolean): string | Invalid {
  try {
    return canonicalTimestamp(text, zoned);
  } catch {
    return INVALID;
  }
}
export const isoTime: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : canonicalTime(text);
};
