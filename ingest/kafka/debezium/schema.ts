/**
 * Kafka Connect schemas → value decoders (§3): a JsonConverter `schema`, compiled once per distinct text into a
 * decoder per field (value-decoders.ts), and the row schema (RowSchema) a change carries.
 *
 *   ConnectSchema => {"type": "struct", "name"?, "fields": [Field…]}
 *   Field         => {"field": <name>, "type": ConnectType, "name"?: <logical name>, "optional"?,
 *                     "parameters"?: {"scale": "<n>", …}, "fields"?: [Field…]}   -- fields when type is struct
 *   ConnectType   => int8|int16|int32|int64|float32|float64|boolean|string|bytes|array|map|struct
 *
 * A field decodes by its logical name first (Decimal, VariableScaleDecimal, Date, Time…, Timestamp…, Zoned/Iso…),
 * else by its Connect type; DECODES_AS says which declared column types each kind decodes as.
 */
import { createHash } from 'node:crypto';
import type { ChangeRow, Unavailable } from '../../change.ts';
import type { ColumnType, Value } from '../../../core/values.ts';
import { fail } from './fields.ts';
import type { Where } from './fields.ts';
import { isObject, ownField, stringOf } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import type { Placeholders } from './placeholders.ts';
import type { RowSchema, RowSchemaColumn } from './types.ts';
import {
  bytesDecoder,
  compositeDecoder,
  decimalDecoder,
  decodeBoolean,
  decodeDays,
  decodeDouble,
  decodeInt32,
  decodeInt64,
  decodeNanoTimestamp,
  decodeVariableScaleDecimal,
  INVALID,
  isoTime,
  isoTimestamp,
  MAX_DECIMAL_SCALE,
  stringDecoder,
  timeOfDayDecoder,
  timestampDecoder,
  zonedTimestamp,
} from './value-decoders.ts';
import type { Decode, Decoded } from './value-decoders.ts';

export interface FieldSpec {
  readonly name: string;
  /** What the decoder accepts, for error messages: "an int32", "a base64 Decimal (scale 2) or a JSON number". */
  readonly expected: string;
  readonly decode: Decode;
  /** The type as Debezium declares it, and the declared column types it decodes as (RowSchemaColumn). */
  readonly type: string;
  readonly decodesAs: readonly ColumnType[];
  /** The field's own schema when it is a struct (envelope before/after/source). */
  readonly struct: StructSchema | undefined;
}

export interface StructSchema {
  /** The JSON text it was compiled from, when it came as text: the cache key. */
  readonly text: string | undefined;
  readonly name: string | undefined;
  readonly fields: readonly FieldSpec[];
  readonly byName: ReadonlyMap<string, FieldSpec>;
  /** The fields minus ExtractNewRecordState metadata, computed on first use. */
  flattened?: readonly FieldSpec[];
  /** `text` as UTF-8, for comparing with records that arrive as bytes; made on first use. */
  bytes?: Buffer;
  /** The row schema of an envelope (its `after`, else `before` struct), null when it has none; made on first use. */
  envelopeRow?: RowSchema | null;
  /** The row schema of a flattened row (its fields minus metadata); made on first use. */
  flattenedRow?: RowSchema;
}

/** Thrown while compiling a schema; turned into a DecodeError by compileTopLevelSchema. */
class SchemaShapeError extends Error {
  readonly path: string;
  readonly found: Json | undefined;
  constructor(path: string, expected: string, found: Json | undefined) {
    super(expected);
    this.path = path;
    this.found = found;
  }
}

export function compileTopLevelSchema(
  json: Json,
  text: string | undefined,
  placeholder: Placeholders,
  where: Where,
  what: string,
): StructSchema {
  try {
    return compileStruct(json, text, placeholder, 'schema');
  } catch (error) {
    if (!(error instanceof SchemaShapeError)) throw error;
    return fail(where, `the ${what} ${error.path}`, error.message, error.found);
  }
}

function compileStruct(
  json: Json,
  text: string | undefined,
  placeholder: Placeholders,
  path: string,
): StructSchema {
  if (!isObject(json) || json['type'] !== 'struct' || !Array.isArray(json['fields'])) {
    throw new SchemaShapeError(path, 'a Kafka Connect struct schema {"type":"struct","fields":[…]}', json);
  }
  const fields = json['fields'].map((field, index) =>
    compileField(field, placeholder, `${path}.fields[${index}]`),
  );
  return {
    text,
    name: stringOf(json['name']),
    fields,
    byName: new Map(fields.map((field) => [field.name, field])),
  };
}

function compileField(json: Json, placeholder: Placeholders, path: string): FieldSpec {
  if (!isObject(json)) throw new SchemaShapeError(path, 'a field schema object', json);
  const name = stringOf(json['field']);
  if (name === undefined) throw new SchemaShapeError(`${path}.field`, 'a field name', json['field']);
  const struct =
    json['type'] === 'struct' && json['name'] !== VARIABLE_SCALE_DECIMAL
      ? compileStruct(json, undefined, placeholder, path)
      : undefined;
  const { decode, expected, type, decodesAs } = compileValue(json, placeholder, path);
  return { name, expected, decode, type, decodesAs, struct };
}

const VARIABLE_SCALE_DECIMAL = 'io.debezium.data.VariableScaleDecimal';

/**
 * What values of each kind of Debezium type decode to, as the declared column types whose values
 * (values.ts) they are: the one mapping from Debezium's types to ours, kept next to the decoders that
 * make it true. A column whose Debezium type does not decode as its declared type no longer fits its
 * declaration (ingest/kafka/schema-tracker.ts).
 *
 * Like the PostgreSQL path (types it does not model arrive as their text output), a declared `text`
 * takes any type that decodes to a string. A plain `string` is passed through as sent, and connectors
 * send other types as strings when told to (decimal.handling.mode=string, binary.handling.mode=base64,
 * …, as the schemaless coercers below accept them): it fits every declared type whose values are strings.
 */
const STRING_VALUED: readonly ColumnType[] = [
  'text', 'varchar', 'bpchar', 'uuid', 'json', 'jsonb', 'numeric', 'int8', 'date', 'time', 'timestamp',
  'timestamptz', 'bytea',
]; // prettier-ignore
const DECODES_AS = {
  integer: ['int2', 'int4'], // int8, int16, int32: a JS number
  int64: ['int8', 'text'], // decimal text
  decimal: ['numeric', 'text'], // Decimal, VariableScaleDecimal: decimal text
  float: ['float4', 'float8'],
  boolean: ['bool'],
  string: STRING_VALUED, // also io.debezium.data.Json, Uuid, Enum, …
  bytes: ['bytea', 'text'], // base64
  composite: ['json', 'jsonb', 'text'], // arrays, maps, structs: their JSON text
  date: ['date', 'text'],
  time: ['time', 'text'],
  timestamp: ['timestamp', 'text'], // a wall clock without a zone
  timestamptz: ['timestamptz', 'text'], // ZonedTimestamp: UTC
} as const satisfies Record<string, readonly ColumnType[]>;

interface CompiledValue {
  readonly decode: Decode;
  readonly expected: string;
  /** RowSchemaColumn.type */
  readonly type: string;
  readonly decodesAs: readonly ColumnType[];
}

/** The decoder for one schema: by logical name (`name`) first, then by Connect type. */
function compileValue(schema: JsonObject, placeholder: Placeholders, path: string): CompiledValue {
  const logicalName = stringOf(schema['name']);
  const named = (decode: Decode, expected: string, decodesAs: readonly ColumnType[]): CompiledValue => ({
    decode,
    expected,
    type: logicalName!,
    decodesAs,
  });
  switch (logicalName) {
    case 'org.apache.kafka.connect.data.Decimal': {
      const parameters = schema['parameters'];
      const scaleText = isObject(parameters) ? stringOf(parameters['scale']) : undefined;
      if (scaleText === undefined || !/^-?\d+$/.test(scaleText)) {
        throw new SchemaShapeError(
          `${path}.parameters.scale`,
          'the Decimal scale as a string',
          isObject(parameters) ? parameters['scale'] : undefined,
        );
      }
      const scale = Number(scaleText);
      if (Math.abs(scale) > MAX_DECIMAL_SCALE) {
        throw new SchemaShapeError(
          `${path}.parameters.scale`,
          `a Decimal scale within ±${MAX_DECIMAL_SCALE}`,
          scaleText,
        );
      }
      // The scale is part of the type: values decode at it, and PostgreSQL rewrites a column whose scale changes.
      return {
        decode: decimalDecoder(scale),
        expected: `a base64 Decimal (scale ${scale}) or a JSON number`,
        type: `${logicalName}(scale=${scale})`,
        decodesAs: DECODES_AS.decimal,
      };
    }
    case VARIABLE_SCALE_DECIMAL:
      return named(decodeVariableScaleDecimal, 'a VariableScaleDecimal {scale, value}', DECODES_AS.decimal);
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return named(decodeDays, 'an integer number of days since 1970-01-01', DECODES_AS.date);
    case 'io.debezium.time.Time':
    case 'org.apache.kafka.connect.data.Time':
      return named(timeOfDayDecoder(1_000, 3), 'milliseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.MicroTime':
      return named(timeOfDayDecoder(1_000_000, 6), 'microseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.NanoTime':
      return named(timeOfDayDecoder(1_000_000_000, 9), 'nanoseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return named(
        timestampDecoder(1_000n),
        'milliseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.MicroTimestamp':
      return named(
        timestampDecoder(1n),
        'microseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.NanoTimestamp':
      return named(
        decodeNanoTimestamp,
        'nanoseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.ZonedTimestamp':
      return named(zonedTimestamp, 'an ISO-8601 timestamp string', DECODES_AS.timestamptz);
    case 'io.debezium.time.IsoTime':
      return named(isoTime, 'an ISO-8601 time string', DECODES_AS.time);
    case 'io.debezium.time.IsoTimestamp':
      return named(isoTimestamp, 'an ISO-8601 timestamp string', DECODES_AS.timestamp);
    default:
      break;
  }
  const type = schema['type'];
  // Other logical names (io.debezium.data.Json, Uuid, Enum, …) decode by their Connect type.
  const typed = (decode: Decode, expected: string, decodesAs: readonly ColumnType[]): CompiledValue => ({
    decode,
    expected,
    type: logicalName ?? String(type),
    decodesAs,
  });
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
      return typed(decodeInt32, `an ${type}`, DECODES_AS.integer);
    case 'int64':
      return typed(decodeInt64, 'an int64', DECODES_AS.int64);
    case 'float32':
    case 'float64':
    case 'float': // not Connect types, but apache/flink's Debezium test data writes them for float32/float64
    case 'double':
      return typed(decodeDouble, `a ${type}`, DECODES_AS.float);
    case 'boolean':
      return typed(decodeBoolean, 'a boolean', DECODES_AS.boolean);
    case 'string':
      return typed(stringDecoder(placeholder), 'a string', DECODES_AS.string);
    case 'bytes':
      return typed(bytesDecoder(placeholder), 'base64 bytes', DECODES_AS.bytes);
    case 'array':
    case 'map':
    case 'struct':
      return typed(
        compositeDecoder(placeholder, type),
        type === 'array' ? 'an array' : 'an object',
        DECODES_AS.composite,
      );
    default:
      throw new SchemaShapeError(
        `${path}.type`,
        'a Kafka Connect type (int8…int64, float32, float64, boolean, string, bytes, array, map, struct)',
        type,
      );
  }
}

/** An envelope's row schema: its `after` struct, else its `before` struct; null when it has neither. */
export function envelopeRowSchema(schema: StructSchema): RowSchema | undefined {
  if (schema.envelopeRow === undefined) {
    const row = schema.byName.get('after')?.struct ?? schema.byName.get('before')?.struct;
    schema.envelopeRow = row === undefined ? null : rowSchemaOf(row.fields);
  }
  return schema.envelopeRow ?? undefined;
}

/** Once per distinct schema: the columns with their type descriptions, and a hash of them as the identity. */
export function rowSchemaOf(fields: readonly FieldSpec[]): RowSchema {
  const columns = new Map<string, RowSchemaColumn>();
  for (const field of fields) columns.set(field.name, { type: field.type, decodesAs: field.decodesAs });
  const text = JSON.stringify(fields.map((field) => [field.name, field.type]));
  return { id: createHash('sha1').update(text).digest('base64url'), columns };
}

export function decodeStructRow(
  fields: readonly FieldSpec[],
  raw: JsonObject,
  path: string,
  where: Where,
): ChangeRow {
  const row: Record<string, Value | Unavailable> = {};
  for (const field of fields) {
    const value = ownField(raw, field.name);
    let decoded: Decoded = null;
    if (value !== undefined && value !== null) {
      decoded = field.decode(value);
      if (decoded === INVALID) fail(where, `${path}.${field.name}`, field.expected, value);
    }
    if (field.name === '__proto__')
      Object.defineProperty(row, field.name, {
        value: decoded,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else row[field.name] = decoded;
  }
  return row;
}
