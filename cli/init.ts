/**
 * `cdc-views init`: scaffold a project against an existing database — tables.ts (introspected),
 * views.config.ts (importing it, with one real view over the first table that has a primary key
 * and commented examples for the others) and .env — without overwriting anything unless --force,
 * then print what the source database still needs and the commands to run next.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { CatalogTable } from './catalog.ts';
import { connectDatabase, type DatabaseConnection } from './database.ts';
import { CliError } from './errors.ts';
import { exportNames, parseTableList, processOutput, readCatalog, renderTablesModule, schemaFor, warn, type Output } from './introspect.ts';

export const INIT_HELP = `cdc-views init — scaffold views.config.ts, tables.ts and .env for a database

Usage:
  cdc-views init --database <url> [--dir .] [--schema public] [--tables a,b] [--force]

Writes, in --dir:
  tables.ts         typed table declarations read from the database (as cdc-views introspect)
  views.config.ts   a config importing them, with a view over the first table that has a primary key
  .env              DATABASE_URL, and REDIS_URL (KAFKA_BROKERS for MySQL/MariaDB) to fill in
then prints what the database still needs for change capture, and what to run next.
Existing files are never overwritten (exit 1, naming them) unless --force.

Options:
  -d, --database <url>   postgres://… or mysql:// / mariadb://… (default $DATABASE_URL)
      --dir <path>       where to write (default .)
      --schema <name>    PostgreSQL schema (default public); MySQL/MariaDB database (default: the URL's)
      --tables <a,b>     only these tables
      --force            replace existing files
  -h, --help             this help

Exit codes: 0 written, 1 a problem to fix (files exist, unreachable database, unknown schema or
table), 2 bad usage.
`;

export interface InitOptions {
  readonly database?: string | undefined;
  readonly dir?: string | undefined;
  readonly schema?: string | undefined;
  readonly tables?: string | undefined;
  readonly force?: boolean | undefined;
}

const FILES = ['tables.ts', 'views.config.ts', '.env'] as const;

export async function runInit(options: InitOptions, out: Output = processOutput): Promise<number> {
  const dir = options.dir ?? '.';
  const url = options.database ?? process.env['DATABASE_URL'];
  const tablesOption = parseTableList(options.tables);
  const existing = FILES.filter((f) => existsSync(join(dir, f)));
  if (existing.length > 0 && !options.force) {
    throw new CliError(1, `Not overwriting existing ${existing.map((f) => join(dir, f)).join(', ')} (pass --force to replace ${existing.length > 1 ? 'them' : 'it'})`);
  }
  const db = await connectDatabase(url);
  let tables: CatalogTable[];
  let schema: string;
  let hints: string[];
  try {
    schema = schemaFor(db, options.schema);
    tables = await readCatalog(db, schema, tablesOption);
    hints = await sourceHints(db, schema, tables);
  } finally {
    await db.close().catch(() => undefined);
  }
  warn(tables, out);
  mkdirSync(dir, { recursive: true });
  const source = { dialect: db.dialect, label: db.label, schema, schemaOption: options.schema, tablesOption, out: 'tables.ts' };
  writeFileSync(join(dir, 'tables.ts'), renderTablesModule(tables, source));
  writeFileSync(join(dir, 'views.config.ts'), renderConfig(tables, db.dialect === 'postgres' ? 'postgres' : 'kafka', schema));
  writeFileSync(join(dir, '.env'), renderEnv(url!, db.dialect === 'postgres' ? 'postgres' : 'kafka'), { mode: 0o600 });
  const shown = relative(process.cwd(), dir) || '.';
  const written = FILES.map((f) => join(shown, f));
  // The config and tables.ts are ES modules: outside a "type": "module" package, Node would load them as CommonJS.
  const pkg = nearestPackageJson(dir);
  if (!pkg) {
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ private: true, type: 'module' }, null, 2)}\n`);
    written.push(join(shown, 'package.json'));
  }
  out.stdout(`✔ wrote ${written.join(', ')} (${tables.length} tables from ${db.label})\n`);
  if (pkg && pkg.type !== 'module') {
    out.stdout(`✖ ${relative(process.cwd(), pkg.path)} has no "type": "module": add it, or rename the files to .mts, since views.config.ts and tables.ts are ES modules\n`);
  }
  if (hints.length > 0) out.stdout(`\nThe source database:\n${hints.map((h) => `  ${h}\n`).join('')}`);
  const cd = shown === '.' ? '' : `cd ${shown}\n  `;
  out.stdout(
    `\nNext:\n  ${cd}# fill in REDIS_URL${db.dialect === 'postgres' ? '' : ' and KAFKA_BROKERS'} in .env, declare views in views.config.ts, then\n` +
      `  set -a && . ./.env && set +a\n` +
      `  npx cdc-views check --config views.config.ts    # validate the views\n` +
      `  npx cdc-views start --config views.config.ts    # follow the changes, serve GraphQL on :4000\n` +
      `  # after a migration: npx cdc-views introspect --out tables.ts (--check in CI)\n`,
  );
  return 0;
}

function nearestPackageJson(dir: string): { path: string; type?: string } | null {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const path = join(d, 'package.json');
    if (existsSync(path)) {
      const { type } = JSON.parse(readFileSync(path, 'utf8')) as { type?: string };
      return type === undefined ? { path } : { path, type };
    }
    if (dirname(d) === d) return null;
  }
}

/** What the source needs for change capture, as read from it: each line a state and its fix. */
async function sourceHints(db: DatabaseConnection, schema: string, tables: readonly CatalogTable[]): Promise<string[]> {
  const hints: string[] = [];
  const keyless = tables.filter((t) => t.key.length === 0).map((t) => `${t.schema}.${t.table}`);
  if (keyless.length > 0) hints.push(`✖ no primary key: ${keyless.join(', ')} (ALTER TABLE … ADD PRIMARY KEY (…); choose the key in tables.ts too)`);
  if (db.dialect === 'mysql') {
    const [vars] = await db.query<{ log_bin: number | string; binlog_format: string; binlog_row_image: string }>(
      'SELECT @@log_bin AS log_bin, @@binlog_format AS binlog_format, @@binlog_row_image AS binlog_row_image',
      [],
    );
    const ok = String(vars?.log_bin) === '1' && vars?.binlog_format === 'ROW' && vars?.binlog_row_image === 'FULL';
    hints.push(
      `${ok ? '✔' : '✖'} binlog: log_bin=${vars?.log_bin} binlog_format=${vars?.binlog_format} binlog_row_image=${vars?.binlog_row_image}` +
        (ok ? '' : ' (Debezium needs log_bin on, binlog_format=ROW, binlog_row_image=FULL)'),
      `• MySQL/MariaDB reaches cdc-views through Debezium and Kafka: see the README, "Debezium and Kafka", for the connector settings`,
    );
    return hints;
  }
  const [server] = await db.query<{ wal_level: string; rolreplication: boolean; rolsuper: boolean; current_user: string }>(
    `SELECT current_setting('wal_level') AS wal_level, r.rolreplication, r.rolsuper, current_user
     FROM pg_roles r WHERE r.rolname = current_user`,
    [],
  );
  hints.push(
    server?.wal_level === 'logical'
      ? `✔ wal_level = logical`
      : `✖ wal_level = ${server?.wal_level}, logical replication needs logical: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
  );
  if (server && !server.rolreplication && !server.rolsuper) {
    hints.push(`✖ role ${server.current_user} may not replicate: ALTER ROLE ${server.current_user} REPLICATION; (or use a role that may)`);
  }
  const identities = await db.query<{ relname: string; nspname: string; relreplident: string }>(
    `SELECT c.relname, n.nspname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = ANY($2::text[])`,
    [schema, tables.map((t) => t.table)],
  );
  const notFull = identities.filter((r) => r.relreplident !== 'f').map((r) => `${r.nspname}.${r.relname}`).sort();
  if (notFull.length > 0) {
    hints.push(
      `• tables an aggregate view reads need REPLICA IDENTITY FULL (the old row on UPDATE and DELETE); not yet: ${notFull.join(', ')}`,
      `  e.g. ALTER TABLE ${notFull[0]} REPLICA IDENTITY FULL;   (the service checks this at start and names the table)`,
    );
  }
  hints.push(`• at first start the service creates a publication and a replication slot (the role needs CREATE on the database and to own the tables)`);
  return hints;
}

/** A config importing every table: a real row view over the first table with a key, the others as comments. */
export function renderConfig(tables: readonly CatalogTable[], kind: 'postgres' | 'kafka', schema: string): string {
  const names = exportNames(tables);
  const keyed = tables.filter((t) => t.key.length > 0 && t.key.every((k) => t.columns.some((c) => c.name === k && c.type !== null)));
  const graphqlName = /^[_A-Za-z][_0-9A-Za-z]*$/;
  const rowView = (t: CatalogTable): string => {
    const fields = t.columns.filter((c) => c.type !== null && graphqlName.test(c.name)).map((c) => `${c.name}: r.${c.name}`);
    return `${names.get(t.table)}: view(${names.get(t.table)}).select((r) => ({ ${fields.join(', ')} }))`;
  };
  const first = keyed[0];
  const imports = tables.map((t) => names.get(t.table)!);
  const views: string[] = [];
  if (first) {
    views.push(`    // One row per row of ${first.schema}.${first.table}, keyed by its primary key; query it as ${names.get(first.table)} over GraphQL.`);
    views.push(`    ${rowView(first)},`);
  }
  const others = keyed.filter((t) => t !== first);
  if (others.length > 0) {
    views.push(`    // More: uncomment, keep the fields you need (a row view selects its key), or group and aggregate:`);
    for (const t of others) views.push(`    // ${rowView(t)},`);
  }
  if (first) {
    const groupable = first.columns.find((c) => c.type !== null && !first.key.includes(c.name) && graphqlName.test(c.name));
    if (groupable) {
      views.push(
        `    // ${names.get(first.table)}By${groupable.name.charAt(0).toUpperCase()}${camel(groupable.name).slice(1)}: view(${names.get(first.table)})` +
          `.groupBy((r) => ({ ${groupable.name}: r.${groupable.name} })).select(() => ({ rows: count() })),  // import count${kind === 'postgres' ? '; needs REPLICA IDENTITY FULL' : ''}`,
      );
    }
  }
  if (!first) views.push('    // No table has a primary key yet: choose one in tables.ts, then declare views here.');
  const sourceLine =
    kind === 'postgres'
      ? `source: source.postgres({ url: process.env.DATABASE_URL, slot: 'cdc_views', publication: 'cdc_views' }),`
      : `source: source.kafka({ brokers: process.env.KAFKA_BROKERS?.split(','), topicPrefix: '${schema}', transactions: true }),`;
  return `/**
 * The views cdc-views keeps in Redis and serves over GraphQL (scaffolded by \`cdc-views init\`).
 * The tables come from tables.ts, generated from the database: regenerate it after a migration
 * (npx cdc-views introspect --out tables.ts). Validate with: npx cdc-views check --config views.config.ts
 */
import { defineConfig, source, view } from 'cdc-views';
import { ${imports.join(', ')} } from './tables.ts';

export default defineConfig({
  ${sourceLine}
  redis: { url: process.env.REDIS_URL },
  views: {
${views.join('\n')}
  },
});
`;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function renderEnv(databaseUrl: string, kind: 'postgres' | 'kafka'): string {
  const lines = [
    '# cdc-views settings (scaffolded by `cdc-views init`). Keep this file out of version control.',
    '# Load it into the shell with: set -a && . ./.env && set +a',
    `DATABASE_URL=${databaseUrl.includes("'") ? databaseUrl : `'${databaseUrl}'`}`,
    '# Where the views live: Redis 7+, ideally with appendonly yes (see the README, "Running it").',
    'REDIS_URL=redis://127.0.0.1:6379',
  ];
  if (kind === 'kafka') lines.push('# Kafka brokers Debezium writes the changes to, comma-separated.', 'KAFKA_BROKERS=127.0.0.1:9092');
  return `${lines.join('\n')}\n`;
}
