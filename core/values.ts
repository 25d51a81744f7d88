/**
 * Typed column values, shared by every source and by the views.
 *
 * One JS representation per column type, chosen so that values stay exact (DESIGN.md §6.7) and
 * survive JSON without a custom codec:
 *
 *   bool                       → boolean
 *   int2, int4, float4, float8 → number
 *   int8, numeric              → string, canonical decimal text ('-12', '3.1400'); never a float
 *   text, varchar, bpchar,
 *   uuid, enum                 → string
 *   date                       → 'YYYY-MM-DD'
 *   time                       → 'HH:MM:SS[.ffffff]'
 *   timestamp                  → 'YYYY-MM-DDTHH:MM:SS[.ffffff]'          (wall clock, no zone)
 *   timestamptz                → 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'         (UTC)
 *   json, jsonb                → string (the JSON text)
 *   bytea                      → string (base64)
 *
 * Fractions of a second keep up to 6 digits with trailing zeros dropped, the way Debezium's
 * ZonedTimestamp prints them.
 */

export type Value = string | number | boolean | null;

/** The column types a table declaration may use. */
export const COLUMN_TYPES = [
  'bool',
  'int2',
  'int4',
  'int8',
  'float4',
  'float8',
  'numeric',
  'text',
  'varchar',
  'bpchar',
  'uuid',
  'date',
  'time',
  'timestamp',
  'timestamptz',
  'json',
  'jsonb',
  'bytea',
] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

export function isColumnType(x: unknown): x is ColumnType {
  return typeof x === 'string' && (COLUMN_TYPES as readonly string[]).includes(x);
}

/** PostgreSQL type OIDs (pg_type.oid, stable across versions) for the column types above. */
export const PG_TYPE_OIDS: Readonly<Record<number, ColumnType>> = {
  16: 'bool',
  17: 'bytea',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  25: 'text',
  114: 'json',
  700: 'float4',
  701: 'float8',
  1042: 'bpchar',
  1043: 'varchar',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamptz',
  1700: 'numeric',
  2950: 'uuid',
  3802: 'jsonb',
};

/** Types whose values are exact decimal strings. */
export function isExactNumeric(type: ColumnType): boolean {
  return type === 'int8' || type === 'numeric';
}

export function isNumeric(type: ColumnType): boolean {
  return (
    type === 'int2' || type === 'int4' || type === 'int8' || type === 'float4' || type === 'float8' || type === 'numeric'
  );
}

/**
 * Decode PostgreSQL's text output of a value (pgoutput tuple data, or a snapshot SELECT with text
 * results) into the canonical representation. Assumes the session runs with `DateStyle=ISO` and
 * `TimeZone=UTC`, which every connection of ours sets at startup.
 *
 * A type we do not model (an unknown OID) keeps its text form.
 */
export function decodePgText(type: ColumnType | undefined, text: string): Value {
  switch (type) {
    case 'bool':
      return text === 't' || text === 'true';
    case 'int2':
    case 'int4':
      return Number(text);
    case 'float4':
    case 'float8':
      return Number(text);
    case 'int8':
    case 'numeric':
      return text;
    case 'timestamptz':
      return canonicalTimestamp(text, true);
    case 'timestamp':
      return canonicalTimestamp(text, false);
    case 'time':
      return canonicalTime(text);
    case 'bytea':
      return text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex').toString('base64') : text;
    default:
      return text;
  }
}

const TIMESTAMP_RE = /^(\d{4,}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(?:(Z)|([+-]\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?$/;

/**
 * Canonical form of a timestamp written as ISO 8601 or as PostgreSQL prints it
 * ('2024-01-02 03:04:05.120000+00'). Zoned input is converted to UTC ('…Z').
 */
export function canonicalTimestamp(text: string, zoned: boolean): string {
  const m = TIMESTAMP_RE.exec(text);
  if (!m) return text; // infinity, BC dates: keep PostgreSQL's text
  const [, date, time, frac = '', z, offH, offM, offS] = m;
  const fraction = trimFraction(frac);
  if (!zoned) return `${date}T${time}${fraction}`;
  if (z || offH === undefined || (Number(offH) === 0 && !Number(offM ?? 0) && !Number(offS ?? 0))) {
    return `${date}T${time}${fraction}Z`;
  }
  const sign = offH.startsWith('-') ? -1 : 1;
  const offsetSeconds = sign * (Math.abs(Number(offH)) * 3600 + Number(offM ?? 0) * 60 + Number(offS ?? 0));
  const utcMs = Date.parse(`${date}T${time}Z`) - offsetSeconds * 1000;
  return `${new Date(utcMs).toISOString().slice(0, 19)}${fraction}Z`;
}

export function canonicalTime(text: string): string {
  const m = /^(\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(text);
  return m ? `${m[1]}${trimFraction(m[2] ?? '')}` : text;
}

function trimFraction(digits: string): string {
  const trimmed = digits.slice(0, 9).replace(/0+$/, '');
  return trimmed ? `.${trimmed}` : '';
}

/** Microseconds since the epoch → canonical UTC timestamp ('…Z'). Exact for any int64 input. */
export function timestampFromMicros(micros: bigint, zoned: boolean): string {
  const seconds = micros / 1_000_000n - (micros % 1_000_000n < 0n ? 1n : 0n);
  const fracMicros = micros - seconds * 1_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const fraction = trimFraction(fracMicros.toString().padStart(6, '0'));
  return `${iso}${fraction}${zoned ? 'Z' : ''}`;
}

/** Type classes of column types (shared by the order keys, the planner and the SQL printer). */
export function isIntegerType(t: ColumnType): boolean {
  return t === 'int2' || t === 'int4' || t === 'int8';
}
export function isFloatType(t: ColumnType): boolean {
  return t === 'float4' || t === 'float8';
}
export function isNumericType(t: ColumnType): boolean {
  return isIntegerType(t) || isFloatType(t) || t === 'numeric';
}
export function isTextType(t: ColumnType): boolean {
  return t === 'text' || t === 'varchar' || t === 'bpchar';
}
