/**
 * `cdc-views introspect`: read the source database's catalog and write a TypeScript module of typed
 * `table(...)` declarations, one export per table (camelCase), for a views config to import.
 *
 *   catalog (cli/catalog.ts) ─► renderTablesModule ─► tables.ts
 *                                       ▲
 *   existing tables.ts ─► parseTablesModule ─► diffTables(before, after) ─► printed; --check: exit 1
 *
 * The output is stable (no timestamps, tables by name, columns in table order), so it can be
 * committed and compared. A table the database gives no primary key keeps the key chosen in the
 * existing file, if any.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { CatalogColumn, CatalogTable, Dialect } from './catalog.ts';
import { CatalogError, readMysqlCatalog, readPostgresCatalog } from './catalog.ts';
import { connectDatabase, type DatabaseConnection } from './database.ts';
import { CliError, usageError } from './errors.ts';

export const INTROSPECT_HELP = `cdc-views introspect — write typed table declarations from the database's catalog

Usage:
  cdc-views introspect --database <url> [--schema public] [--tables a,b] [--out tables.ts] [--check]

Reads the tables of one schema (PostgreSQL) or database (MySQL/MariaDB), and writes a TypeScript
module with one table(...) declaration per table: every column with its cdc-views type ('numeric?'
when nullable) and the primary key. A column of a type cdc-views cannot represent is left out, with
a comment and a warning; a table without a primary key is declared with key: [] and a comment.
When the output file exists, what changed (tables and columns added, removed or retyped,
nullability, keys) is printed before it is overwritten.

Options:
  -d, --database <url>   postgres://… or mysql:// / mariadb://… (default $DATABASE_URL)
      --schema <name>    PostgreSQL schema (default public); MySQL/MariaDB database (default: the URL's)
      --tables <a,b>     only these tables (default: all of the schema's)
  -o, --out <file>       the module to write (default tables.ts; - prints it)
      --check            compare with the existing file and write nothing: exit 1 when they differ
  -h, --help             this help

Exit codes: 0 written or up to date, 1 differences (--check) or a problem to fix (unreachable
database, unknown schema or table), 2 bad usage.
`;

export interface IntrospectOptions {
  readonly database?: string | undefined;
  readonly schema?: string | undefined;
  /** Comma-separated table names. */
  readonly tables?: string | undefined;
  readonly out?: string | undefined;
  readonly check?: boolean | undefined;
}

export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processOutput: Output = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** What a module generation needs to know besides the tables: where they came from, how to regenerate. */
export interface ModuleSource {
  readonly dialect: Dialect;
  readonly label: string;
  readonly schema: string;
  /** The --schema and --tables given, repeated in the regenerate command. */
  readonly schemaOption?: string | undefined;
  readonly tablesOption?: readonly string[] | undefined;
  readonly out: string;
}

/** Read the catalog of `schema` (all its tables, or the named ones) through an open connection. */
export async function readCatalog(db: DatabaseConnection, schema: string, tables?: readonly string[]): Promise<CatalogTable[]> {
  const read = db.dialect === 'postgres' ? readPostgresCatalog : readMysqlCatalog;
  try {
    return await read(db.query, { schema, tables });
  } catch (error) {
    if (error instanceof CatalogError) throw new CliError(1, `${db.label}: ${error.message}`);
    throw error;
  }
}

/** The schema to read: --schema, else public (PostgreSQL) or the URL's database (MySQL/MariaDB). */
export function schemaFor(db: DatabaseConnection, schema: string | undefined): string {
  if (schema) return schema;
  if (db.dialect === 'postgres') return 'public';
  if (!db.database) throw usageError(`Expected --schema <database>, or a database in the URL (${db.label}<database>)`);
  return db.database;
}

export function parseTableList(tables: string | undefined): string[] | undefined {
  if (tables === undefined) return undefined;
  const list = tables.split(',').map((t) => t.trim()).filter(Boolean);
  if (list.length === 0) throw usageError(`Expected --tables a,b (table names separated by commas), but found '${tables}'`);
  return list;
}

export async function runIntrospect(options: IntrospectOptions, out: Output = processOutput): Promise<number> {
  const tablesOption = parseTableList(options.tables);
  const file = options.out ?? 'tables.ts';
  if (file === '-' && options.check) throw usageError('Expected --out <file> with --check (the file to compare), but found -');
  const db = await connectDatabase(options.database ?? process.env['DATABASE_URL']);
  let tables: CatalogTable[];
  let schema: string;
  try {
    schema = schemaFor(db, options.schema);
    tables = await readCatalog(db, schema, tablesOption);
  } finally {
    await db.close().catch(() => undefined);
  }
  const source: ModuleSource = { dialect: db.dialect, label: db.label, schema, schemaOption: options.schema, tablesOption, out: file };

  if (file === '-') {
    warn(tables, out);
    out.stdout(renderTablesModule(tables, source));
    return 0;
  }
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : null;
  const before = previous === null ? null : parseTablesModule(previous);
  const text = renderTablesModule(tables, source, before ?? []);
  const after = parseTablesModule(text);
  const differences = before === null ? null : diffTables(before, after);

  if (options.check) {
    if (differences === null) {
      out.stdout(`✖ ${file} does not exist; run the same command without --check to write it\n`);
      return 1;
    }
    if (differences.length > 0) {
      out.stdout(`✖ ${file} differs from ${db.label} (${plural(differences.length, 'difference')}):\n${differences.map((d) => `  ${d}\n`).join('')}`);
      out.stdout(`Run the same command without --check to update ${file}.\n`);
      return 1;
    }
    out.stdout(`✔ ${file} matches ${db.label} (${plural(tables.length, 'table')})\n`);
    return 0;
  }

  warn(tables, out);
  if (differences && differences.length > 0) {
    out.stdout(`${file}: ${plural(differences.length, 'difference')} from the database:\n${differences.map((d) => `  ${d}\n`).join('')}`);
  }
  if (previous !== text) writeFileSync(file, text);
  if (differences === null) {
    out.stdout(`✔ wrote ${file}: ${plural(tables.length, 'table')} from ${db.label} (${tables.map((t) => exportNames(tables).get(t.table)).join(', ')})\n`);
  } else {
    out.stdout(differences.length > 0 ? `✔ updated ${file}\n` : `✔ ${file} is up to date (${plural(tables.length, 'table')})\n`);
  }
  return 0;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Warnings on stderr: columns left out, tables without a primary key. */
export function warn(tables: readonly CatalogTable[], out: Output): void {
  for (const t of tables) {
    for (const c of t.columns) {
      if (c.type === null) out.stderr(`⚠ ${t.schema}.${t.table}.${c.name} (${c.dbType}) left out: ${c.note ?? 'unsupported type'}\n`);
    }
    if (usableKey(t).length === 0) {
      out.stderr(`⚠ ${t.schema}.${t.table} has no primary key: choose the columns that identify a row (key in the declaration) and add that primary key to the table\n`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

const RESERVED = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in ' +
    'instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface ' +
    'package private protected public await arguments eval undefined table'
  ).split(' '),
);

/** order_items → orderItems; a name JavaScript reserves (or `table`) gets a Table suffix. */
export function camelCase(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter(Boolean);
  let id = words.map((w, i) => (i === 0 ? w.charAt(0).toLowerCase() + w.slice(1) : w.charAt(0).toUpperCase() + w.slice(1))).join('') || 'table';
  if (/^[0-9]/.test(id)) id = `t${id}`;
  return RESERVED.has(id) ? `${id}Table` : id;
}

/** Table name → export name, unique (a second `orderItems` becomes `orderItems2`). */
export function exportNames(tables: readonly CatalogTable[]): Map<string, string> {
  const names = new Map<string, string>();
  const used = new Set<string>();
  for (const t of tables) {
    let name = camelCase(t.table);
    for (let i = 2; used.has(name); i++) name = `${camelCase(t.table)}${i}`;
    used.add(name);
    names.set(t.table, name);
  }
  return names;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function property(name: string): string {
  return IDENTIFIER.test(name) ? name : quote(name);
}

function spec(c: CatalogColumn): string {
  return `${c.type}${c.nullable ? '?' : ''}`;
}

/** The primary key, unless one of its columns is left out (then the table is treated as keyless). */
function usableKey(t: CatalogTable): readonly string[] {
  const declared = new Set(t.columns.filter((c) => c.type !== null).map((c) => c.name));
  return t.key.every((k) => declared.has(k)) ? t.key : [];
}

/** A comment after the column: the database's type when it says more than the declaration (numeric(12,2), varchar(20), an enum). */
function columnComment(c: CatalogColumn): string {
  if (c.note) return ` // ${c.note}`;
  if (/\(/.test(c.dbType) && !/^\w*int(eger)?\(\d+\)$/.test(c.dbType)) return ` // ${c.dbType}`;
  return '';
}

function keyText(key: readonly string[]): string {
  return key.length === 1 ? quote(key[0]!) : `[${key.map(quote).join(', ')}]`;
}

/** The command that regenerates the module. */
export function regenerateCommand(source: ModuleSource): string {
  const parts = ['npx cdc-views introspect --database "$DATABASE_URL"'];
  if (source.schemaOption) parts.push(`--schema ${source.schemaOption}`);
  if (source.tablesOption) parts.push(`--tables ${source.tablesOption.join(',')}`);
  parts.push(`--out ${source.out}`);
  return parts.join(' ');
}

/**
 * The module's text. `previous` is what the existing file declares: a table the database gives no
 * primary key keeps the key chosen there.
 */
export function renderTablesModule(tables: readonly CatalogTable[], source: ModuleSource, previous: readonly DeclaredTable[] = []): string {
  const names = exportNames(tables);
  const where = source.dialect === 'postgres' ? `schema ${source.schema}` : `database ${source.schema}`;
  const lines: string[] = [
    '/**',
    ` * Generated by \`cdc-views introspect\` from ${source.label} (${where}): the source tables,`,
    ' * each column with its type (`?`: nullable) and the primary key. Do not edit by hand; after a',
    ' * migration regenerate it with',
    ' *',
    ` *   ${regenerateCommand(source)}`,
    ' *',
    ' * (add --check to only compare: exit code 1 when the database no longer matches, e.g. in CI).',
    ' */',
    "import { table } from 'cdc-views';",
  ];
  for (const t of tables) {
    const qualified = `${t.schema}.${t.table}`;
    const declared = t.columns.filter((c) => c.type !== null);
    let key = usableKey(t);
    lines.push('');
    if (key.length === 0) {
      const chosen = previous.find((p) => p.name === qualified)?.key ?? [];
      const names = new Set(declared.filter((c) => !c.nullable).map((c) => c.name));
      if (chosen.length > 0 && chosen.every((k) => names.has(k))) key = chosen;
      lines.push(
        `// ${qualified} has no primary key in the database: set key to the NOT NULL column(s) that identify a row,`,
        `// and add that primary key to the table (cdc-views tells rows apart by it; it checks the table at start).`,
      );
    }
    lines.push(`export const ${names.get(t.table)} = table(`, `  ${quote(qualified)},`, '  {');
    for (const c of t.columns) {
      if (c.type === null) lines.push(`    // left out: ${c.name} ${c.dbType} (${c.note ?? 'unsupported type'})`);
      else lines.push(`    ${property(c.name)}: ${quote(spec(c))},${columnComment(c)}`);
    }
    lines.push('  },', `  { key: ${keyText(key)} },`, ');');
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Reading a generated module back, and comparing

export interface DeclaredTable {
  readonly exportName: string;
  /** schema.table */
  readonly name: string;
  /** column → spec ('numeric?') in declaration order */
  readonly columns: ReadonlyMap<string, string>;
  readonly key: readonly string[];
}

const TABLE_RE = /export const ([A-Za-z_$][\w$]*) = table\(\s*'([^']*)',\s*\{([\s\S]*?)\},\s*\{\s*key:\s*([^}]*?)\s*\}\s*,?\s*\);/g;
const COLUMN_RE = /^\s*(?:'((?:[^'\\]|\\.)*)'|([A-Za-z_$][\w$]*))\s*:\s*'([a-z0-9]+\??)'/gm;

/** The declarations of a module written by renderTablesModule (hand-chosen keys included). */
export function parseTablesModule(text: string): DeclaredTable[] {
  const tables: DeclaredTable[] = [];
  for (const m of text.matchAll(TABLE_RE)) {
    const columns = new Map<string, string>();
    for (const c of m[3]!.matchAll(COLUMN_RE)) columns.set(c[1]?.replace(/\\(.)/g, '$1') ?? c[2]!, c[3]!);
    const key = [...m[4]!.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((k) => k[1]!.replace(/\\(.)/g, '$1'));
    tables.push({ exportName: m[1]!, name: m[2]!, columns, key });
  }
  return tables;
}

/** What changed from `before` to `after`, one line each. */
export function diffTables(before: readonly DeclaredTable[], after: readonly DeclaredTable[]): string[] {
  const lines: string[] = [];
  const old = new Map(before.map((t) => [t.name, t]));
  const now = new Map(after.map((t) => [t.name, t]));
  for (const t of after) {
    const was = old.get(t.name);
    if (!was) {
      lines.push(`+ table ${t.name} (${plural(t.columns.size, 'column')}, key (${t.key.join(', ') || 'none'}))`);
      continue;
    }
    for (const [column, s] of t.columns) {
      const w = was.columns.get(column);
      if (w === undefined) lines.push(`~ ${t.name}: + column ${column} '${s}'`);
      else if (w !== s) {
        const typeChanged = w.replace(/\?$/, '') !== s.replace(/\?$/, '');
        const nullChanged = w.endsWith('?') !== s.endsWith('?');
        const what = [typeChanged ? 'type' : '', nullChanged ? (s.endsWith('?') ? 'now nullable' : 'now NOT NULL') : ''].filter(Boolean).join(', ');
        lines.push(`~ ${t.name}: column ${column} '${w}' → '${s}' (${what})`);
      }
    }
    for (const [column, w] of was.columns) {
      if (!t.columns.has(column)) lines.push(`~ ${t.name}: - column ${column} (was '${w}')`);
    }
    if (was.key.join(',') !== t.key.join(',')) lines.push(`~ ${t.name}: key (${was.key.join(', ') || 'none'}) → (${t.key.join(', ') || 'none'})`);
  }
  for (const t of before) if (!now.has(t.name)) lines.push(`- table ${t.name}`);
  return lines;
}
