/**
 * The CLI's plain commands as users type them: `sql` prints every view as one query PostgreSQL runs
 * unchanged (and one view by name), `schema` prints the committed SDL, `--help` and `--version`, and a
 * command it does not know.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type pg from 'pg';
import { CLI } from '../support/child-service.ts';
import { connect, createDatabase, uniqueName } from '../support/shop.ts';

const run = promisify(execFile);
const EXAMPLE = new URL('../../examples/shop/views.config.ts', import.meta.url).pathname;

describe('the CLI', () => {
  let db: pg.Client;

  beforeAll(async () => {
    db = await connect(await createDatabase(inject('databaseUrl'), uniqueName('cli')));
  });
  afterAll(() => db?.end());

  it('sql: every view as SQL that PostgreSQL runs unchanged; one view by name', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'sql', '--config', EXAMPLE]);
    const statements = stdout.split(/^-- (\w+)$/m).slice(1);
    const names = statements.filter((_, i) => i % 2 === 0);
    expect(names).toContain('lowStock');
    expect(names.length).toBe(16);
    for (let i = 0; i < statements.length; i += 2) {
      await expect(db.query(statements[i + 1]!.trim().replace(/;$/, '')), `view ${statements[i]}`).resolves.toBeDefined();
    }
    const one = await run(process.execPath, [CLI, 'sql', 'lowStock', '--config', EXAMPLE]);
    expect(one.stdout).toMatch(/^-- lowStock\nSELECT [\s\S]*"stock" < [\s\S]*"reorder_level"/);
  });

  it('schema: the SDL committed in schema/schema.graphql', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'schema', '--config', EXAMPLE]);
    expect(stdout).toBe(readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8'));
  });

  it('--help lists every command; --version; an unknown command exits 1 with the help', async () => {
    const help = await run(process.execPath, [CLI, '--help']);
    for (const command of ['start', 'check', 'sql', 'schema', 'status', 'verify', 'slot drop', 'reactions replay']) expect(help.stdout).toContain(`cdc-views ${command}`);
    const version = await run(process.execPath, [CLI, '--version']);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
    const unknown = await run(process.execPath, [CLI, 'frobnicate', '--config', EXAMPLE]).catch((e: { code: number; stderr: string }) => e);
    expect(unknown).toMatchObject({ code: 1 });
    expect((unknown as { stderr: string }).stderr).toContain("Unknown command 'frobnicate'");
  });
});
