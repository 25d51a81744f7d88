/**
 * Check the source database against the declared tables before streaming, and report every
 * mismatch at once with the statement that fixes it: a table without a primary key, a column that
 * is missing or of another type, a nullable column declared NOT NULL, a replica identity too weak
 * for the views that need old rows, wal_level below logical.
 *
 * The shapes read here are the baseline the stream is compared with: pgoutput sends a relation
 * message before a table's first change after any DDL, and `shapeChanges` turns the difference
 * into SchemaChanges (renamed, columns dropped or added, a type changed, replica identity).
 */
import type pg from 'pg';
import type { SchemaChange } from '../change.ts';
import type { ColumnType } from '../../core/values.ts';
import { PG_TYPE_OIDS } from '../../core/values.ts';
import { SourceSchemaError } from '../errors.ts';
import type { TableRequirement } from '../source-options.ts';


const TEXT_TYPES: readonly ColumnType[] = ['text', 'varchar', 'bpchar'];
const JSON_TYPES: readonly ColumnType[] = ['json', 'jsonb'];

function compatible(declared: ColumnType, actual: ColumnType | undefined, typtype: string): boolean {
  if (declared === actual) return true;
  if (TEXT_TYPES.includes(declared) && actual && TEXT_TYPES.includes(actual)) return true;
  if (JSON_TYPES.includes(declared) && actual && JSON_TYPES.includes(actual)) return true;
  // Enums and types we do not model arrive as their text output.
  return declared === 'text' && (typtype === 'e' || actual === undefined);
}

export function splitTableName(name: string): [schema: string, table: string] {
  const [schema, table] = name.split('.');
  return [schema!, table!];
}

/** A table as the catalog (or the latest relation message) describes it. */
export interface TableShape {
  readonly oid: number;
  /** schema.table */
  readonly name: string;
  /** d default · n nothing · f full · i index */
  readonly replicaIdentity: string;
  readonly columns: ReadonlyMap<string, { readonly typeOid: number; readonly typeModifier: number }>;
}

const IDENTITY_NAMES: Record<string, string> = { d: 'default', n: 'nothing', f: 'full', i: 'index' };

/** A type as PostgreSQL prints it, from its oid and modifier (numeric(12,2), varchar(40), int8, …). */
export function formatPgType(typeOid: number, typeModifier: number): string {
  const base = PG_TYPE_OIDS[typeOid] ?? `oid ${typeOid}`;
  if (typeModifier < 0) return base;
  if (base === 'numeric') return `numeric(${(typeModifier - 4) >> 16},${(typeModifier - 4) & 0xffff})`;
  if (base === 'varchar' || base === 'bpchar') return `${base}(${typeModifier - 4})`;
  if (base === 'timestamp' || base === 'timestamptz' || base === 'time') return `${base}(${typeModifier})`;
  return base;
}

/** What changed between a table's known shape and a new one, judged against its declaration. */
export function shapeChanges(before: TableShape, after: TableShape, declared: TableRequirement): SchemaChange[] {
  const table = declared.name;
  const changes: SchemaChange[] = [];
  if (after.name !== before.name) changes.push({ kind: 'renamed', table, newName: after.name });
  const dropped = [...before.columns.keys()].filter((c) => !after.columns.has(c));
  const added = [...after.columns.keys()].filter((c) => !before.columns.has(c));
  if (dropped.length > 0) changes.push({ kind: 'columnsDropped', table, columns: dropped });
  if (added.length > 0) changes.push({ kind: 'columnsAdded', table, columns: added });
  for (const [column, now] of after.columns) {
    const was = before.columns.get(column);
    if (!was || (was.typeOid === now.typeOid && was.typeModifier === now.typeModifier)) continue;
    const declaredType = declared.columns[column]?.type;
    changes.push({
      kind: 'typeChanged',
      table,
      column,
      from: formatPgType(was.typeOid, was.typeModifier),
      to: formatPgType(now.typeOid, now.typeModifier),
      fitsDeclaration: declaredType === undefined || compatible(declaredType, PG_TYPE_OIDS[now.typeOid], ''),
    });
  }
  if (after.replicaIdentity !== before.replicaIdentity) {
    changes.push({
      kind: 'replicaIdentity',
      table,
      from: IDENTITY_NAMES[before.replicaIdentity] ?? before.replicaIdentity,
      to: IDENTITY_NAMES[after.replicaIdentity] ?? after.replicaIdentity,
    });
  }
  return changes;
}

/** Throws SourceSchemaError listing every problem; returns each declared table's shape otherwise. */
export async function checkSourceTables(client: pg.Client, tables: readonly TableRequirement[]): Promise<Map<string, TableShape>> {
  const shapes = new Map<string, TableShape>();
  const problems: string[] = [];
  const walLevel = (await client.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
  if (walLevel !== 'logical') {
    problems.push(
      `wal_level is '${walLevel}', but logical replication needs 'logical'. Fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
    );
  }
  for (const t of tables) {
    const [schema, name] = splitTableName(t.name);
    const rel = await client.query<{ oid: number; relreplident: string; relkind: string }>(
      `SELECT c.oid, c.relreplident, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2`,
      [schema, name],
    );
    const table = rel.rows[0];
    if (!table) {
      problems.push(`table ${t.name} does not exist in the source database (declared in the config)`);
      continue;
    }
    if (table.relkind !== 'r' && table.relkind !== 'p') {
      problems.push(`${t.name} is not a table (relkind '${table.relkind}'); only tables can be replicated`);
      continue;
    }
    const columns = await client.query<{ attname: string; atttypid: number; atttypmod: number; attnotnull: boolean; typtype: string; typname: string }>(
      `SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, t.typtype, format_type(a.atttypid, a.atttypmod) AS typname
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
       WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
      [table.oid],
    );
    const actual = new Map(columns.rows.map((c) => [c.attname, c]));
    shapes.set(t.name, {
      oid: Number(table.oid),
      name: t.name,
      replicaIdentity: table.relreplident,
      columns: new Map(columns.rows.map((c) => [c.attname, { typeOid: Number(c.atttypid), typeModifier: Number(c.atttypmod) }])),
    });
    for (const [column, declared] of Object.entries(t.columns)) {
      const c = actual.get(column);
      if (!c) {
        problems.push(`column ${t.name}.${column} does not exist (declared as '${declared.type}')`);
        continue;
      }
      const actualType = PG_TYPE_OIDS[c.atttypid];
      if (!compatible(declared.type, actualType, c.typtype)) {
        problems.push(
          `column ${t.name}.${column} is declared '${declared.type}', but the database has '${c.typname}'; declare it as '${actualType ?? 'text'}'`,
        );
      }
      if (!declared.nullable && !c.attnotnull) {
        problems.push(
          `column ${t.name}.${column} is declared NOT NULL ('${declared.type}'), but the database allows NULL; declare it '${declared.type}?' or add NOT NULL to the column`,
        );
      }
    }
    const pk = await client.query<{ attname: string }>(
      `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
      [table.oid],
    );
    const pkColumns = pk.rows.map((r) => r.attname);
    if (pkColumns.length === 0) {
      problems.push(
        `table ${t.name} has no primary key, so its rows cannot be told apart in a change stream. Fix: ALTER TABLE ${t.name} ADD PRIMARY KEY (${t.key.join(', ')});`,
      );
    } else if ([...pkColumns].sort().join(',') !== [...t.key].sort().join(',')) {
      problems.push(`table ${t.name} has primary key (${pkColumns.join(', ')}), but the config declares key (${t.key.join(', ')})`);
    }
    if (table.relreplident === 'n') {
      problems.push(`table ${t.name} has REPLICA IDENTITY NOTHING, so updates and deletes are not streamed. Fix: ALTER TABLE ${t.name} REPLICA IDENTITY FULL;`);
    } else if (t.needsOldRowFor.length > 0 && table.relreplident !== 'f') {
      problems.push(
        `table ${t.name} has REPLICA IDENTITY ${table.relreplident === 'd' ? 'DEFAULT' : 'USING INDEX'}, but ${t.needsOldRowFor.join(', ')} aggregate${t.needsOldRowFor.length > 1 ? '' : 's'} it and needs the whole old row on UPDATE and DELETE. Fix: ALTER TABLE ${t.name} REPLICA IDENTITY FULL;`,
      );
    }
  }
  if (problems.length > 0) throw new SourceSchemaError(problems);
  return shapes;
}
