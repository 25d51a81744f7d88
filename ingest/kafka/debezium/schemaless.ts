/**
 * Without schemas (schemas.enable=false): a row whose values are decoded from their JSON type, coerced to the
 * column type that `DecoderOptions.columnTypes(table)` declares. Assumptions:
 * - numeric: a decimal string (decimal.handling.mode=string) or a JSON number (kept digit for digit); a
 *   `{scale, value}` VariableScaleDecimal. A base64 Decimal cannot be decoded (its scale is in the schema):
 *   DecodeError, asking for decimal.handling.mode=string or schemas.
 * - date: an integer is days since 1970-01-01 (io.debezium.time.Date); a string is kept.
 * - time, timestamp, timestamptz: an integer is microseconds (MicroTime / MicroTimestamp: PostgreSQL's
 *   adaptive default for precision 4–6, which is the default precision; MySQL's adaptive_time_microseconds).
 *   A column of precision 0–3 arrives in milliseconds and would be misread: keep schemas on for those, or use
 *   time.precision.mode=isostring / connect. Strings (isostring) are canonicalised.
 * - bytea: a base64 string (binary.handling.mode=base64, the default).
 * - A column that is not declared keeps its JSON type: an integer beyond 2^53 becomes its decimal string,
 *   other numbers stay numbers, objects and arrays become JSON text.
 */
import { UNAVAILABLE } from '../../change.ts';
import type { ChangeRow, Unavailable } from '../../change.ts';
import { formatDecimal, parseDecimal } from '../../../core/decimal.ts';
import { canonicalTime, timestampFromMicros } from '../../../core/values.ts';
import type { ColumnType } from '../../../core/values.ts';
import { fail } from './fields.ts';
import type { Where } from './fields.ts';
import { isObject, jsonText, numberTextOf, stringOf } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import { isCompositePlaceholder } from './placeholders.ts';
import type { Placeholders } from './placeholders.ts';
import {
  BASE64_RE,
  bigIntOf,
  bytesDecoder,
  checkedTimestamp,
  DECIMAL_TEXT_RE,
  decodeDays,
  decodeDouble,
  decodeInt32,
  decodeVariableScaleDecimal,
  hasModestExponent,
  int64Text,
  INTEGER_RE,
  INVALID,
  MAX_TIMESTAMP_MICROS,
  NON_FINITE_NUMBERS,
  stringDecoder,
  timeOfDayDecoder,
  timestampDecoder,
} from './value-decoders.ts';
import type { Decode, Decoded, Invalid } from './value-decoders.ts';

interface Coercer {
  readonly expected: string;
  readonly decode: Decode;
}

export type DeclaredTable = ReadonlyMap<string, Coercer>;

export function declareTable(
  types: Readonly<Record<string, ColumnType>>,
  placeholder: Placeholders,
): DeclaredTable {
  return new Map(Object.entries(types).map(([column, type]) => [column, coercerFor(type, placeholder)]));
}

function coercerFor(type: ColumnType, placeholder: Placeholders): Coercer {
  const declared = `(declared ${type})`;
  switch (type) {
    case 'bool':
      return {
        expected: `a boolean ${declared}`,
        decode: (raw) => (typeof raw === 'boolean' ? raw : raw === 1 ? true : raw === 0 ? false : INVALID),
      };
    case 'int2':
    case 'int4':
      return { expected: `an integer ${declared}`, decode: decodeInt32 };
    case 'int8':
      return {
        expected: `an integer ${declared}`,
        decode: (raw) => int64Text(raw) ?? integerString(raw) ?? INVALID,
      };
    case 'float4':
    case 'float8':
      return { expected: `a number ${declared}`, decode: decodeDouble };
    case 'numeric':
      return { expected: `a decimal string or a JSON number ${declared}`, decode: decodeDeclaredNumeric };
    case 'date':
      return {
        expected: `days since 1970-01-01 or a date string ${declared}`,
        decode: orString(decodeDays, (text) => text),
      };
    case 'time':
      return {
        expected: `microseconds past midnight or a time string ${declared}`,
        decode: orString(timeOfDayDecoder(1_000_000, 6), canonicalTime),
      };
    case 'timestamp':
      return {
        expected: `microseconds since the epoch or a timestamp string ${declared}`,
        decode: orString(timestampDecoder(1n), (text) => checkedTimestamp(text, false)),
      };
    case 'timestamptz':
      return {
        expected: `microseconds since the epoch or a timestamp string ${declared}`,
        decode: orString(zonedMicros, (text) => checkedTimestamp(text, true)),
      };
    case 'json':
    case 'jsonb': {
      const asString = stringDecoder(placeholder);
      return {
        expected: `JSON text ${declared}`,
        decode: (raw) => (Array.isArray(raw) || isObject(raw) ? jsonText(raw) : asString(raw)),
      };
    }
    case 'bytea':
      return { expected: `base64 bytes ${declared}`, decode: bytesDecoder(placeholder) };
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'uuid':
      return { expected: `a string ${declared}`, decode: stringDecoder(placeholder) };
  }
}

function integerString(raw: Json): string | undefined {
  const text = stringOf(raw);
  return text !== undefined && INTEGER_RE.test(text) ? text : undefined;
}

/** An integer decoder that also accepts a string (isostring modes), canonicalised by `fromText`. */
function orString(fromInteger: Decode, fromText: (text: string) => string | Invalid): Decode {
  return (raw) => {
    if (typeof raw === 'string' && numberTextOf(raw) === undefined) {
      const text = stringOf(raw);
      return text === undefined ? INVALID : fromText(text);
    }
    return fromInteger(raw);
  };
}

const zonedMicros: Decode = (raw) => {
  const micros = bigIntOf(raw);
  if (micros === undefined) return INVALID;
  return micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS
    ? INVALID
    : timestampFromMicros(micros, true);
};

/** numeric without a schema: a decimal string, a JSON number (exact), or a VariableScaleDecimal struct. */
const decodeDeclaredNumeric: Decode = (raw) => {
  if (typeof raw === 'number') return String(raw === 0 ? 0 : raw);
  const number = numberTextOf(raw);
  if (number !== undefined) {
    if (!/[eE]/.test(number)) return number;
    return hasModestExponent(number) ? formatDecimal(parseDecimal(number)) : INVALID;
  }
  if (isObject(raw)) return decodeVariableScaleDecimal(raw);
  const text = stringOf(raw);
  if (text === undefined) return INVALID;
  if (NON_FINITE_NUMBERS.has(text)) return text; // PostgreSQL numeric NaN/±Infinity, as pgoutput gives them
  if (!DECIMAL_TEXT_RE.test(text) || !hasModestExponent(text)) return INVALID;
  return /[eE+]|^-?\.|\.$/.test(text) ? formatDecimal(parseDecimal(text)) : text;
};

/** A base64 Decimal looks like this; say how to fix it rather than only that it failed. */
function schemalessHint(coercer: Coercer | undefined, raw: Json): string {
  if (coercer?.decode !== decodeDeclaredNumeric) return '';
  const text = stringOf(raw);
  if (text === undefined || !BASE64_RE.test(text)) return '';
  return (
    ', which looks like a base64 Decimal: its scale is only in the schema, so it cannot be decoded without one.' +
    ' Set decimal.handling.mode=string on the connector, or enable value schemas (value.converter.schemas.enable=true)'
  );
}

/**
 * A row without a schema: declared columns are coerced to their type, undeclared ones keep their JSON
 * type. Values are replaced in place (the object is fresh from the parser); with `skip`, a new object is
 * built without the skipped columns.
 */
export function decodeSchemalessRow(
  state: { readonly placeholder: Placeholders },
  raw: JsonObject,
  declared: DeclaredTable | null,
  path: string,
  where: Where,
  skip?: (column: string) => boolean,
): ChangeRow {
  const row: Record<string, Json | Unavailable> = skip === undefined ? raw : {};
  for (const column in raw) {
    if (skip?.(column)) continue;
    const value = raw[column] as Json;
    let decoded: Decoded = null;
    if (value !== null) {
      const coercer = declared?.get(column);
      decoded = coercer === undefined ? decodeUndeclared(value, state.placeholder) : coercer.decode(value);
      if (decoded === INVALID) {
        const expected = coercer?.expected ?? 'a JSON value';
        fail(where, `${path}.${column}`, expected, value, schemalessHint(coercer, value));
      }
    }
    if (column === '__proto__' && skip !== undefined)
      Object.defineProperty(row, column, {
        value: decoded,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else row[column] = decoded;
  }
  return row as ChangeRow;
}

function decodeUndeclared(raw: Json, placeholder: Placeholders): Decoded {
  if (typeof raw === 'string') {
    if (raw.charCodeAt(0) !== 0)
      return raw === placeholder.text || raw === placeholder.base64 ? UNAVAILABLE : raw;
    const number = numberTextOf(raw);
    if (number === undefined) return stringOf(raw) ?? INVALID;
    if (!INTEGER_RE.test(number)) return Number(number);
    const value = Number(number);
    return Number.isSafeInteger(value) ? value : number;
  }
  if (typeof raw !== 'object' || raw === null) return raw;
  return isCompositePlaceholder(raw, placeholder) ? UNAVAILABLE : jsonText(raw);
}
