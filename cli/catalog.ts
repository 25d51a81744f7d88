/**
 * Reading a database's catalog for `cdc-views introspect`: which tables a schema holds, their
 * columns with the cdc-views type each maps to, nullability and primary key. Pure apart from the
 * query function it is given, so the type mapping is unit-tested with catalog rows.
 *
 *   PostgreSQL       pg_class / pg_attribute / pg_type / pg_index of one schema (namespace)
 *   MySQL, MariaDB   information_schema.TABLES / COLUMNS / KEY_COLUMN_USAGE of one database,
 *                    typed the way Debezium's MySQL/MariaDB connector decodes each column
 *
 * A column of a type cdc-views cannot represent gets `type: null` and a note saying why; the
 * generated module names it in a comment instead of declaring it.
 */
import type { ColumnType } from '../core/values.ts';

export type Dialect = 'postgres' | 'mysql';

/** Runs one SQL statement with positional parameters and returns its rows. */
export type Query = <R extends object>(sql: string, params: readonly unknown[]) => Promise<R[]>;

export interface CatalogColumn {
  readonly name: string;
  /** The type as the database prints it: numeric(12,2), varchar(20), int(11) unsigned, … */
  readonly dbType: string;
  /** The cdc-views column type, or null when cdc-views cannot represent the column. */
  readonly type: ColumnType | null;
  readonly nullable: boolean;
  /** Why a column is skipped, or how its type was read. */
  readonly note?: string;
}

export interface CatalogTable {
  /** PostgreSQL schema, or MySQL/MariaDB database. */
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly CatalogColumn[];
  /** Primary key columns in key order; empty when the table has none. */
  readonly key: readonly string[];
}

export interface CatalogOptions {
  readonly schema: string;
  /** Only these tables (all of the schema's when absent). */
  readonly tables?: readonly string[] | undefined;
}

/** A problem the user must fix in what was asked for (an unknown schema or table). */
export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** pg_type.typname → cdc-views type, for the types cdc-views models (core/values.ts PG_TYPE_OIDS). */
const PG_TYPES: Readonly<Record<string, ColumnType>> = {
  bool: 'bool',
  int2: 'int2',
  int4: 'int4',
  int8: 'int8',
  float4: 'float4',
  float8: 'float8',
  numeric: 'numeric',
  text: 'text',
  varchar: 'varchar',
  bpchar: 'bpchar',
  uuid: 'uuid',
  date: 'date',
  time: 'time',
  timestamp: 'timestamp',
  timestamptz: 'timestamptz',
  json: 'json',
  jsonb: 'jsonb',
  bytea: 'bytea',
};

export interface PgColumnRow {
  readonly typname: string;
  /** pg_type.typtype: b base, e enum, d domain, c composite, r range, … */
  readonly typtype: string;
  /** format_type(atttypid, atttypmod) */
  readonly formatted: string;
  /** The base type of a domain. */
  readonly base_typname?: string | null;
}

const TEXT_FORM = 'a PostgreSQL source delivers it as text: declare it \'text\' to read it so';

/** The cdc-views type of a PostgreSQL column, or null with the reason. */
export function pgColumnType(row: PgColumnRow): { type: ColumnType | null; note?: string } {
  const mapped = PG_TYPES[row.typname];
  if (mapped) return { type: mapped };
  // Enums arrive as their label, from pgoutput and from Debezium alike.
  if (row.typtype === 'e') return { type: 'text', note: `enum ${row.typname}` };
  if (row.typtype === 'd') {
    const base = row.base_typname ?? '?';
    // A domain arrives under its own type oid, that is as text; over a text type that is exact.
    if (base === 'text' || base === 'varchar' || base === 'bpchar') return { type: 'text', note: `domain ${row.typname} over ${base}` };
    return { type: null, note: `domain ${row.typname} over ${base}: cdc-views has no type for a domain; ${TEXT_FORM}` };
  }
  if (row.typname.startsWith('_')) return { type: null, note: `cdc-views has no array types; ${TEXT_FORM}` };
  return { type: null, note: `cdc-views has no type for ${row.formatted}; ${TEXT_FORM}` };
}

/** The tables of one schema (or the ones named), with columns in table order and primary keys. */
export async function readPostgresCatalog(query: Query, options: CatalogOptions): Promise<CatalogTable[]> {
  const { schema } = options;
  const schemas = await query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY nspname`,
    [],
  );
  if (!schemas.some((s) => s.nspname === schema)) {
    throw new CatalogError(`Expected a schema of the database (${schemas.map((s) => s.nspname).join(', ') || 'none'}), but found '${schema}'`);
  }
  const columns = await query<PgColumnRow & { relname: string; attname: string; nullable: boolean }>(
    `SELECT c.relname, a.attname, NOT a.attnotnull AS nullable, t.typname, t.typtype,
            format_type(a.atttypid, a.atttypmod) AS formatted, bt.typname AS base_typname
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd'
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
     ORDER BY c.relname, a.attnum`,
    [schema],
  );
  const keys = await query<{ relname: string; attname: string }>(
    `SELECT c.relname, a.attname
     FROM pg_index i
     JOIN pg_class c ON c.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE n.nspname = $1 AND i.indisprimary
     ORDER BY c.relname, array_position(i.indkey, a.attnum)`,
    [schema],
  );
  const tables = new Map<string, { columns: CatalogColumn[]; key: string[] }>();
  for (const row of columns) {
    const t = tables.get(row.relname) ?? { columns: [], key: [] };
    tables.set(row.relname, t);
    const { type, note } = pgColumnType(row);
    t.columns.push({ name: row.attname, dbType: row.formatted, type, nullable: row.nullable, ...(note ? { note } : {}) });
  }
  for (const row of keys) tables.get(row.relname)?.key.push(row.attname);
  return select(tables, options, 'schema');
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB

export interface MysqlColumnRow {
  /** information_schema.COLUMNS.DATA_TYPE: int, varchar, decimal, … */
  readonly data_type: string;
  /** COLUMN_TYPE: int(11) unsigned, tinyint(1), enum('a','b'), … */
  readonly column_type: string;
}

const MYSQL_TYPES: Readonly<Record<string, ColumnType>> = {
  tinyint: 'int2',
  smallint: 'int2',
  mediumint: 'int4',
  int: 'int4',
  integer: 'int4',
  bigint: 'int8',
  decimal: 'numeric',
  numeric: 'numeric',
  float: 'float4',
  double: 'float8',
  real: 'float8',
  char: 'text',
  varchar: 'text',
  tinytext: 'text',
  text: 'text',
  mediumtext: 'text',
  longtext: 'text',
  enum: 'text',
  set: 'text',
  json: 'json',
  uuid: 'uuid',
  binary: 'bytea',
  varbinary: 'bytea',
  tinyblob: 'bytea',
  blob: 'bytea',
  mediumblob: 'bytea',
  longblob: 'bytea',
  date: 'date',
  time: 'time',
  // Debezium: DATETIME → (Micro)Timestamp, a wall clock; TIMESTAMP → ZonedTimestamp in UTC.
  datetime: 'timestamp',
  timestamp: 'timestamptz',
  year: 'int4',
};

/**
 * The cdc-views type of a MySQL/MariaDB column as Debezium's connector decodes it (the mapping of
 * examples/shop/schema.mariadb.sql), or null with the reason. An unsigned integer takes the next
 * wider type; BIT(1) is a boolean.
 */
export function mysqlColumnType(row: MysqlColumnRow): { type: ColumnType | null; note?: string } {
  const dataType = row.data_type.toLowerCase();
  const columnType = row.column_type.toLowerCase();
  const unsigned = columnType.includes('unsigned');
  if (dataType === 'bit') {
    return columnType === 'bit(1)' ? { type: 'bool' } : { type: null, note: `cdc-views has no type for ${columnType}: Debezium sends its bytes` };
  }
  if (unsigned) {
    if (dataType === 'tinyint') return { type: 'int2' };
    if (dataType === 'smallint' || dataType === 'mediumint') return { type: 'int4' };
    if (dataType === 'int' || dataType === 'integer') return { type: 'int8' };
    if (dataType === 'bigint') return { type: 'numeric', note: 'bigint unsigned: set the connector\'s bigint.unsigned.handling.mode=precise' };
  }
  const mapped = MYSQL_TYPES[dataType];
  if (mapped) return { type: mapped };
  return { type: null, note: `cdc-views has no type for ${columnType}` };
}

/** The tables of one database (or the ones named), with columns in table order and primary keys. */
export async function readMysqlCatalog(query: Query, options: CatalogOptions): Promise<CatalogTable[]> {
  const { schema } = options;
  const schemas = await query<{ name: string }>(
    `SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA
     WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY SCHEMA_NAME`,
    [],
  );
  if (!schemas.some((s) => s.name === schema)) {
    throw new CatalogError(`Expected a database of the server (${schemas.map((s) => s.name).join(', ') || 'none'}), but found '${schema}'`);
  }
  const columns = await query<MysqlColumnRow & { table_name: string; column_name: string; is_nullable: string }>(
    `SELECT c.TABLE_NAME AS table_name, c.COLUMN_NAME AS column_name, c.IS_NULLABLE AS is_nullable,
            c.DATA_TYPE AS data_type, c.COLUMN_TYPE AS column_type
     FROM information_schema.COLUMNS c
     JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
     WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'
     ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`,
    [schema],
  );
  const keys = await query<{ table_name: string; column_name: string }>(
    `SELECT TABLE_NAME AS table_name, COLUMN_NAME AS column_name FROM information_schema.KEY_COLUMN_USAGE
     WHERE TABLE_SCHEMA = ? AND CONSTRAINT_NAME = 'PRIMARY'
     ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [schema],
  );
  const tables = new Map<string, { columns: CatalogColumn[]; key: string[] }>();
  for (const row of columns) {
    const t = tables.get(row.table_name) ?? { columns: [], key: [] };
    tables.set(row.table_name, t);
    const { type, note } = mysqlColumnType(row);
    t.columns.push({ name: row.column_name, dbType: row.column_type, type, nullable: row.is_nullable === 'YES', ...(note ? { note } : {}) });
  }
  for (const row of keys) tables.get(row.table_name)?.key.push(row.column_name);
  return select(tables, options, 'database');
}

// ---------------------------------------------------------------------------------------------

function select(found: Map<string, { columns: CatalogColumn[]; key: string[] }>, options: CatalogOptions, schemaWord: string): CatalogTable[] {
  const names = options.tables ?? [...found.keys()].sort();
  const missing = names.filter((n) => !found.has(n));
  if (missing.length > 0) {
    throw new CatalogError(
      `Expected tables of ${schemaWord} ${options.schema} (${[...found.keys()].sort().join(', ') || 'it has none'}), but found ${missing.map((m) => `'${m}'`).join(', ')}`,
    );
  }
  return names.map((table) => ({ schema: options.schema, table, ...found.get(table)! }));
}
