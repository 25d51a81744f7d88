/**
 * `cdc-views introspect` and `cdc-views init` as users type them, against real databases: the shop
 * schema plus a table of every type, a keyless table and columns cdc-views cannot represent. The
 * generated module must type-check, be importable by a config that `cdc-views check` accepts, and
 * declare the shop's tables exactly as examples/shop/views.config.ts does (PostgreSQL and MariaDB).
 *
 * Each project directory gets a node_modules/cdc-views link to this repository and a package.json
 * ("type": "module"), like a project that installed cdc-views.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { shopTables } from '../../examples/shop/views.config.ts';
import { parseTablesModule, type DeclaredTable } from '../../cli/introspect.ts';
import { startMariaDb, type RunningMariaDb } from '../../scripts/kafka-stack/index.ts';
import { CLI, scratchDir } from '../support/child-service.ts';
import { connect, createDatabase, SHOP_SCHEMA, uniqueName } from '../support/shop.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOP_MARIADB = readFileSync(join(REPO, 'examples/shop/schema.mariadb.sql'), 'utf8');

const MORE_TYPES = `
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE everything (
  id uuid PRIMARY KEY, doc jsonb, js json, blob bytea NOT NULL, at timestamp, day date, t time, flag bool NOT NULL,
  big int8, f float8, code varchar(20) NOT NULL, cc char(3), place point, feeling mood
);
CREATE TABLE shipments (order_id int4, seq int2, carrier text NOT NULL, PRIMARY KEY (order_id, seq));
CREATE TABLE audit_log (at timestamptz NOT NULL, message text);
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO, env: { ...process.env, ...options.env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** A directory laid out like a project that depends on cdc-views. */
function project(prefix: string): string {
  const dir = mkdtempSync(join(scratchDir(), `${prefix}-`));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO, join(dir, 'node_modules', 'cdc-views'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  return dir;
}

/** Run tsc over the project's .ts files with the repository's compiler settings. */
function typecheck(dir: string): Promise<Run> {
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: join(REPO, 'tsconfig.json'),
      compilerOptions: { typeRoots: [join(REPO, 'node_modules/@types')] },
      include: [join(dir, '*.ts')],
    }),
  );
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { timeout: 180_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The shop's declarations (examples/shop/views.config.ts) in the generated module's terms. */
function expectShopTables(declared: readonly DeclaredTable[], schema: string): void {
  for (const [exportName, def] of Object.entries(shopTables(schema))) {
    const found = declared.find((t) => t.name === def.name);
    expect(found, def.name).toBeDefined();
    expect(found!.exportName).toBe(exportName);
    expect(Object.fromEntries(found!.columns)).toEqual(def.specs);
    expect(found!.key).toEqual(def.key);
  }
}

const REVENUE_CONFIG = `import { count, defineConfig, eq, source, sum, view } from 'cdc-views';
import { customers, orders } from './tables.ts';

export default defineConfig({
  source: source.postgres({ url: process.env.DATABASE_URL, slot: 'cdc_views', publication: 'cdc_views' }),
  views: {
    revenueByCustomer: view(orders)
      .where((o) => eq(o.status, 'paid'))
      .groupBy((o) => ({ customerId: o.customer_id }))
      .select((o) => ({ orders: count(), revenue: sum(o.amount) })),
    customerNames: view(customers).select((c) => ({ id: c.id, name: c.name })),
  },
});
`;

describe('cdc-views introspect (PostgreSQL)', () => {
  let databaseUrl: string;
  let dir: string;

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), uniqueName('introspect'), SHOP_SCHEMA + MORE_TYPES);
    dir = project('introspect');
  });

  it('writes every table with its types, nullability and key; leaves out what cdc-views cannot represent, with a warning', async () => {
    const run = await cli(['introspect', '--database', databaseUrl], { cwd: dir });
    expect(run.stderr).toBe(
      [
        '⚠ public.audit_log has no primary key: choose the columns that identify a row (key in the declaration) and add that primary key to the table',
        "⚠ public.everything.place (point) left out: cdc-views has no type for point; a PostgreSQL source delivers it as text: declare it 'text' to read it so",
        '',
      ].join('\n'),
    );
    expect(run.code).toBe(0);
    const label = databaseUrl.replace('postgres@', '');
    expect(run.stdout).toBe(`✔ wrote tables.ts: 7 tables from ${label} (auditLog, customers, everything, orderItems, orders, products, shipments)\n`);
    const text = readFileSync(join(dir, 'tables.ts'), 'utf8');
    expect(text).toContain(`Generated by \`cdc-views introspect\` from ${label} (schema public)`);
    expect(text).toContain('npx cdc-views introspect --database "$DATABASE_URL" --out tables.ts');
    expect(text).not.toContain('postgres@'); // no user or password in the file
    expect(text).toContain(`export const everything = table(
  'public.everything',
  {
    id: 'uuid',
    doc: 'jsonb?',
    js: 'json?',
    blob: 'bytea',
    at: 'timestamp?',
    day: 'date?',
    t: 'time?',
    flag: 'bool',
    big: 'int8?',
    f: 'float8?',
    code: 'varchar', // character varying(20)
    cc: 'bpchar?', // character(3)
    // left out: place point (cdc-views has no type for point; a PostgreSQL source delivers it as text: declare it 'text' to read it so)
    feeling: 'text?', // enum mood
  },
  { key: 'id' },
);`);
    expect(text).toContain(`export const shipments = table(
  'public.shipments',
  {
    order_id: 'int4',
    seq: 'int2',
    carrier: 'text',
  },
  { key: ['order_id', 'seq'] },
);`);
    expect(text).toContain(`// public.audit_log has no primary key in the database: set key to the NOT NULL column(s) that identify a row,
// and add that primary key to the table (cdc-views tells rows apart by it; it checks the table at start).
export const auditLog = table(
  'public.audit_log',
  {
    at: 'timestamptz',
    message: 'text?',
  },
  { key: [] },
);`);
    expectShopTables(parseTablesModule(text), 'public');
  });

  it('the module type-checks and a config importing it passes cdc-views check', async () => {
    writeFileSync(join(dir, 'views.config.ts'), REVENUE_CONFIG);
    const check = await cli(['check', '--config', 'views.config.ts', '--offline'], { cwd: dir });
    expect(check.stderr).toBe('');
    expect(check.stdout).toBe('✔ views.config.ts: 2 views over 2 tables\n  revenueByCustomer (aggregate, key: customerId)\n  customerNames (rows, key: id)\n');
    expect(check.code).toBe(0);
    const tsc = await typecheck(dir);
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  }, 240_000);

  it('--tables and --out pick the tables and the file; - prints the module', async () => {
    const run = await cli(['introspect', '--database', databaseUrl, '--tables', 'orders,order_items', '--out', '-']);
    expect(run.code).toBe(0);
    const declared = parseTablesModule(run.stdout);
    expect(declared.map((t) => t.name)).toEqual(['public.orders', 'public.order_items']);
    expect(run.stdout).toContain('--tables orders,order_items --out -');
  });

  it('--check prints what changed after a migration and exits 1, writing nothing; a rerun updates the file', async () => {
    const url = await createDatabase(inject('databaseUrl'), uniqueName('migrate'), SHOP_SCHEMA + MORE_TYPES);
    const here = project('migrate');
    expect((await cli(['introspect', '--database', url], { cwd: here })).code).toBe(0);
    // A key chosen by hand for the keyless table is kept.
    const file = join(here, 'tables.ts');
    writeFileSync(file, readFileSync(file, 'utf8').replace("  { key: [] },", "  { key: 'at' },"));
    const clean = await cli(['introspect', '--database', url, '--check'], { cwd: here });
    expect(clean.stdout).toBe(`✔ tables.ts matches ${url.replace('postgres@', '')} (7 tables)\n`);
    expect(clean.code).toBe(0);

    const db = await connect(url);
    await db.query(`
      ALTER TABLE orders ADD COLUMN note text;
      ALTER TABLE orders ALTER COLUMN amount TYPE float8;
      ALTER TABLE products ALTER COLUMN category DROP NOT NULL;
      ALTER TABLE customers DROP COLUMN country;
      ALTER TABLE shipments DROP CONSTRAINT shipments_pkey, ADD PRIMARY KEY (order_id, seq, carrier);
      DROP TABLE everything;
      CREATE TABLE refunds (id int8 PRIMARY KEY, order_id int4 NOT NULL);
    `);
    await db.end();
    const before = readFileSync(file, 'utf8');
    const check = await cli(['introspect', '--database', url, '--check'], { cwd: here });
    expect(check.stdout).toBe(
      [
        `✖ tables.ts differs from ${url.replace('postgres@', '')} (7 differences):`,
        "  ~ public.customers: - column country (was 'text?')",
        "  ~ public.orders: column amount 'numeric?' → 'float8?' (type)",
        "  ~ public.orders: + column note 'text?'",
        "  ~ public.products: column category 'text' → 'text?' (now nullable)",
        '  + table public.refunds (2 columns, key (id))',
        '  ~ public.shipments: key (order_id, seq) → (order_id, seq, carrier)',
        '  - table public.everything',
        'Run the same command without --check to update tables.ts.',
        '',
      ].join('\n'),
    );
    expect(check.code).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(before);

    const update = await cli(['introspect', '--database', url], { cwd: here });
    expect(update.code).toBe(0);
    expect(update.stdout).toContain('tables.ts: 7 differences from the database:\n  ~ public.customers: - column country');
    expect(update.stdout).toContain('✔ updated tables.ts\n');
    expect(readFileSync(file, 'utf8')).toContain("note: 'text?'");
    expect(readFileSync(file, 'utf8')).toContain("  { key: 'at' },");
    expect((await cli(['introspect', '--database', url, '--check'], { cwd: here })).code).toBe(0);
  });

  it('--check without the file exits 1 and says how to write it', async () => {
    const run = await cli(['introspect', '--database', databaseUrl, '--check', '--out', join(dir, 'missing.ts')]);
    expect(run.stdout).toBe(`✖ ${join(dir, 'missing.ts')} does not exist; run the same command without --check to write it\n`);
    expect(run.code).toBe(1);
  });

  it('names what was wrong: bad URL and missing URL (2), unreachable server, unknown schema or table (1)', async () => {
    const expected = 'a database URL like postgres://user:password@host:5432/db or mysql://user:password@host:3306/db';
    expect(await cli(['introspect', '--database', 'not a url'])).toMatchObject({ code: 2, stderr: `Expected ${expected}, but found 'not a url'\n` });
    expect(await cli(['introspect', '--database', 'http://example.com/db'])).toMatchObject({ code: 2, stderr: `Expected ${expected}, but found a http: URL\n` });
    expect(await cli(['introspect'], { env: { DATABASE_URL: '' } })).toMatchObject({ code: 2, stderr: `Expected --database <url> (or $DATABASE_URL): ${expected}\n` });
    expect(await cli(['introspect', '--databse', databaseUrl])).toMatchObject({ code: 2 });
    expect(await cli(['introspect', '--database', 'postgres://127.0.0.1:1/db', '--check', '--out', '-'])).toMatchObject({
      code: 2,
      stderr: 'Expected --out <file> with --check (the file to compare), but found -\n',
    });
    expect(await cli(['introspect', '--database', 'postgres://someone:secret@127.0.0.1:1/db', '--out', '-'])).toMatchObject({
      code: 1,
      stderr: 'Cannot connect to postgres://127.0.0.1:1/db: connection refused (is the server running and listening there?)\n',
    });
    const label = databaseUrl.replace('postgres@', '');
    expect(await cli(['introspect', '--database', databaseUrl, '--schema', 'sales', '--out', '-'])).toMatchObject({
      code: 1,
      stderr: `${label}: Expected a schema of the database (public), but found 'sales'\n`,
    });
    expect(await cli(['introspect', '--tables', 'orders,ordres', '--out', '-'], { env: { DATABASE_URL: databaseUrl } })).toMatchObject({
      code: 1,
      stderr: `${label}: Expected tables of schema public (audit_log, customers, everything, order_items, orders, products, shipments), but found 'ordres'\n`,
    });
  });

  it('--help shows the usage of introspect and of init', async () => {
    const introspect = await cli(['introspect', '--help']);
    expect(introspect.code).toBe(0);
    expect(introspect.stdout).toMatch(/^cdc-views introspect — /);
    expect(introspect.stdout).toContain('--check            compare with the existing file and write nothing: exit 1 when they differ');
    const init = await cli(['init', '--help']);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^cdc-views init — /);
    expect(init.stdout).toContain('--force            replace existing files');
    const general = await cli(['--help']);
    expect(general.stdout).toContain('cdc-views introspect --database <url>');
    expect(general.stdout).toContain('cdc-views init --database <url>');
  });
});

describe('cdc-views init', () => {
  let databaseUrl: string;

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), uniqueName('init'), SHOP_SCHEMA + MORE_TYPES);
  });

  it('writes tables.ts, views.config.ts and .env that pass cdc-views check, and prints what the source needs and what to run', async () => {
    const parent = project('init');
    const run = await cli(['init', '--database', databaseUrl, '--dir', 'app'], { cwd: parent });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('✔ wrote app/tables.ts, app/views.config.ts, app/.env (7 tables from');
    expect(run.stdout).toContain('✔ wal_level = logical');
    expect(run.stdout).toContain('✖ no primary key: public.audit_log');
    expect(run.stdout).toContain('tables an aggregate view reads need REPLICA IDENTITY FULL (the old row on UPDATE and DELETE); not yet: public.audit_log, public.everything, public.shipments');
    expect(run.stdout).toContain('cd app\n');
    expect(run.stdout).toContain('npx cdc-views check --config views.config.ts');
    expect(run.stdout).toContain('npx cdc-views start --config views.config.ts');
    expect(run.stderr).toContain('⚠ public.everything.place (point) left out');
    const app = join(parent, 'app');
    expect(readFileSync(join(app, '.env'), 'utf8')).toContain(`DATABASE_URL='${databaseUrl}'\n`);
    expect(readFileSync(join(app, '.env'), 'utf8')).toContain('REDIS_URL=redis://127.0.0.1:6379\n');
    const config = readFileSync(join(app, 'views.config.ts'), 'utf8');
    expect(config).toContain("import { auditLog, customers, everything, orderItems, orders, products, shipments } from './tables.ts';");
    expect(config).toContain('    customers: view(customers).select((r) => ({ id: r.id, name: r.name, country: r.country, created_at: r.created_at })),\n');
    expect(config).toContain('    // orders: view(orders).select(');
    expectShopTables(parseTablesModule(readFileSync(join(app, 'tables.ts'), 'utf8')), 'public');

    const check = await cli(['check', '--config', join(app, 'views.config.ts')], { cwd: parent });
    expect(check.stderr).toBe('');
    expect(check.stdout).toContain('1 views over 1 tables\n  customers (rows, key: id)\n');
    expect(check.code).toBe(0);
    // Every commented example is a valid view too.
    writeFileSync(join(app, 'views.config.ts'), config.replace(/^ {4}\/\/ (\w+: view\()/gm, '    $1').replace("import { defineConfig", 'import { count, defineConfig').replace(/\), {2}\/\/ import count.*$/m, '),'));
    const all = await cli(['check', '--config', join(app, 'views.config.ts')], { cwd: parent });
    expect(all.stderr).toBe('');
    expect(all.stdout).toMatch(/✔ .*: 7 views over 6 tables/);
  });

  it('never overwrites: exit 1 naming the files, unless --force', async () => {
    const dir = project('init-again');
    writeFileSync(join(dir, '.env'), 'MINE=1\n');
    writeFileSync(join(dir, 'views.config.ts'), '// mine\n');
    const refused = await cli(['init', '--database', databaseUrl], { cwd: dir });
    expect(refused).toMatchObject({ code: 1, stderr: 'Not overwriting existing views.config.ts, .env (pass --force to replace them)\n' });
    expect(existsSync(join(dir, 'tables.ts'))).toBe(false);
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe('MINE=1\n');
    const forced = await cli(['init', '--database', databaseUrl, '--force'], { cwd: dir });
    expect(forced.code).toBe(0);
    expect(readFileSync(join(dir, 'views.config.ts'), 'utf8')).toContain("from './tables.ts'");
  });

  it('outside any package, writes a package.json that makes the files ES modules', async () => {
    const dir = mkdtempSync(join(scratchDir(), 'init-bare-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(REPO, join(dir, 'node_modules', 'cdc-views'), 'dir');
    const run = await cli(['init', '--database', databaseUrl, '--tables', 'orders'], { cwd: dir });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('✔ wrote tables.ts, views.config.ts, .env, package.json (1 tables from');
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toEqual({ private: true, type: 'module' });
    expect((await cli(['check', '--config', 'views.config.ts'], { cwd: dir })).code).toBe(0);
  });
});

describe('cdc-views introspect (MariaDB)', () => {
  let mariadb: RunningMariaDb;

  beforeAll(async () => {
    mariadb = await startMariaDb({ log: () => undefined });
    await mariadb.sql('CREATE DATABASE shop');
    await mariadb.sql(SHOP_MARIADB, 'shop');
    await mariadb.sql(
      `CREATE TABLE everything (id BIGINT UNSIGNED PRIMARY KEY, u INT UNSIGNED NOT NULL, flag BIT(1), dt DATETIME(6), day DATE,
         c CHAR(3), e ENUM('a','b') NOT NULL, b VARBINARY(10), g POINT, d DOUBLE);
       CREATE TABLE notes (a INT NOT NULL, b TEXT)`,
      'shop',
    );
  }, 120_000);

  afterAll(async () => {
    await mariadb?.stop();
  }, 60_000);

  it('declares the shop tables as examples/shop/views.config.ts does over <database>.<table>, typed as Debezium decodes them', async () => {
    const dir = project('introspect-mariadb');
    const url = mariadb.url.replace(/^mysql:/, 'mariadb:') + 'shop';
    const run = await cli(['introspect', '--database', url], { cwd: dir });
    expect(run.stderr).toBe(
      [
        '⚠ shop.everything.g (point) left out: cdc-views has no type for point',
        '⚠ shop.notes has no primary key: choose the columns that identify a row (key in the declaration) and add that primary key to the table',
        '',
      ].join('\n'),
    );
    expect(run.code).toBe(0);
    const text = readFileSync(join(dir, 'tables.ts'), 'utf8');
    expect(text).not.toContain(mariadb.password);
    expect(text).toContain('(database shop)');
    const declared = parseTablesModule(text);
    expectShopTables(declared, 'shop');
    expect(Object.fromEntries(declared.find((t) => t.name === 'shop.everything')!.columns)).toEqual({
      id: 'numeric',
      u: 'int8',
      flag: 'bool?',
      dt: 'timestamp?',
      day: 'date?',
      c: 'text?',
      e: 'text',
      b: 'bytea?',
      d: 'float8?',
    });
    writeFileSync(join(dir, 'views.config.ts'), REVENUE_CONFIG);
    expect((await cli(['check', '--config', 'views.config.ts'], { cwd: dir })).code).toBe(0);
    expect((await cli(['introspect', '--database', url, '--check'], { cwd: dir })).code).toBe(0);
    await mariadb.sql('ALTER TABLE orders ADD COLUMN note VARCHAR(10)', 'shop');
    const check = await cli(['introspect', '--database', url, '--check'], { cwd: dir });
    expect(check.code).toBe(1);
    expect(check.stdout).toContain("~ shop.orders: + column note 'text?'");
    expect((await cli(['introspect', '--database', mariadb.url, '--schema', 'nope', '--out', '-'])).stderr).toBe(
      `${mariadb.url.replace(/root:[^@]*@/, '')}: Expected a database of the server (shop), but found 'nope'\n`,
    );
  });
});
