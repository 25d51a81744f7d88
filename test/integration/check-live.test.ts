/**
 * `cdc-views check` against the live database: a fitting one passes (with notes on what start will
 * create); each way it does not fit is listed with the statement that fixes it, exiting 1; an
 * unreachable one says so; `--offline` checks the config alone.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLI, startChildService, writeShopConfig } from '../support/child-service.ts';
import { connect, createDatabase, uniqueName } from '../support/shop.ts';
import type pg from 'pg';

const run = promisify(execFile);

async function check(...args: string[]): Promise<{ code: number; stdout: string }> {
  return run(process.execPath, [CLI, 'check', ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout + e.stderr }),
  );
}

describe('cdc-views check, live', () => {
  const name = uniqueName('checklive');
  let db: pg.Client;
  let configFile: string;

  beforeAll(async () => {
    const url = await createDatabase(inject('databaseUrl'), name);
    db = await connect(url);
    configFile = writeShopConfig(url, inject('redisUrl'), name);
  });
  afterAll(async () => {
    await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db.end();
  });

  it('passes a database that fits, noting what start will create', async () => {
    const { code, stdout } = await check('--config', configFile);
    expect(code, stdout).toBe(0);
    expect(stdout).toContain('✔ the source database fits');
    expect(stdout).toContain(`publication ${name} does not exist yet: start creates it`);
    expect(stdout).toContain(`replication slot ${name} does not exist yet`);
  });

  it('lists every way it does not fit, each with its fix, and exits 1', async () => {
    await db.query(`ALTER TABLE orders REPLICA IDENTITY DEFAULT`);
    await db.query(`ALTER TABLE products DROP CONSTRAINT products_pkey`);
    await db.query(`ALTER TABLE customers ALTER COLUMN name DROP NOT NULL`);
    await db.query(`CREATE PUBLICATION ${name} FOR TABLE customers, products`);
    await db.query(`SELECT pg_create_logical_replication_slot('${name}', 'test_decoding')`);
    const { code, stdout } = await check('--config', configFile);
    expect(code).toBe(1);
    expect(stdout).toContain('✖ table public.orders has REPLICA IDENTITY DEFAULT, but');
    expect(stdout).toContain('Fix: ALTER TABLE public.orders REPLICA IDENTITY FULL;');
    expect(stdout).toContain('✖ table public.products has no primary key');
    expect(stdout).toContain('Fix: ALTER TABLE public.products ADD PRIMARY KEY (id);');
    expect(stdout).toContain("✖ column public.customers.name is declared NOT NULL ('text'), but the database allows NULL");
    expect(stdout).toContain(`✖ publication ${name} does not include public.orders, public.order_items, so their changes never arrive. Fix: ALTER PUBLICATION ${name} ADD TABLE public.orders, public.order_items;`);
    expect(stdout).toContain(`✖ replication slot ${name} is a logical slot of plugin test_decoding, not a pgoutput one.`);
    expect(stdout).not.toContain('✔ the source database fits');
  });

  it('slot drop: drops the slot (not one in use without --force), saying what it frees and what the next start does', async () => {
    const drop = (...args: string[]): Promise<{ code: number; stdout: string }> =>
      run(process.execPath, [CLI, 'slot', 'drop', ...args, '--config', configFile]).then(
        (r) => ({ code: 0, stdout: r.stdout }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout + e.stderr }),
      );
    const first = await drop(); // the test_decoding slot of the test before
    expect(first.code, first.stdout).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`Dropped replication slot '${name}': [\\d.]+ MiB of WAL it retained on the primary can be recycled. The next start of deployment '${name}' finds no slot and rebuilds every view`));
    // A running service holds its slot: refused, unless forced.
    await db.query(`ALTER TABLE orders REPLICA IDENTITY FULL; ALTER TABLE products ADD PRIMARY KEY (id); ALTER TABLE customers ALTER COLUMN name SET NOT NULL; DROP PUBLICATION ${name}`);
    const service = await startChildService(configFile);
    try {
      for (let i = 0; i < 300 && (await fetch(service.url.replace('/graphql', '/ready')).then((r) => r.status, () => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      const refused = await drop();
      expect(refused.code).toBe(1);
      expect(refused.stdout).toContain(`Replication slot '${name}' is in use`);
      const forced = await drop('--force');
      expect(forced.code, forced.stdout).toBe(0);
    } finally {
      service.process.kill('SIGKILL');
      await service.exited;
    }
    const again = await drop();
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`There is no replication slot '${name}'`);
    const usage = await run(process.execPath, [CLI, 'slot', 'list', '--config', configFile]).catch((e: { code: number; stderr: string }) => e);
    expect(usage).toMatchObject({ code: 2, stderr: "Expected 'slot drop', but found 'slot list'\n" });
  });

  it('says when the database cannot be reached; --offline checks the config alone', async () => {
    const unreachable = await check('--config', configFile, '--database', 'postgres://postgres@127.0.0.1:1/nothing');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stdout).toContain('✖ the source database cannot be reached');
    const offline = await check('--config', configFile, '--offline');
    expect(offline.code).toBe(0);
    expect(offline.stdout).not.toContain('source database');
  });
});
