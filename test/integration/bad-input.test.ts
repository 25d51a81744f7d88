/**
 * Bad input gets a clear error that names what was wrong and where, and loses nothing: an invalid
 * config fails listing every problem; a table the views cannot follow fails at start with the fix;
 * a change a view cannot apply is parked in the dead-letter stream and counted, that view stops
 * (never served as if it were right), and the rest flows on.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startService } from '../../api/service.ts';
import { source } from '../../ingest/source-options.ts';
import { SourceSchemaError } from '../../ingest/errors.ts';
import { deadLetterKey, keyPrefix } from '../../views/store/keys.ts';
import { connectRedis } from '../../views/store/redis.ts';
import { count, sum, table, view } from '../../views/define.ts';
import { defineConfig } from '../../views/config.ts';
import { CLI, scratchDir } from '../support/child-service.ts';
import { quietLogger } from '../support/logger.ts';
import { connect, createDatabase, graphql, uniqueName, waitForSync } from '../support/shop.ts';

const run = promisify(execFile);
const slots: { db: pg.Client; slot: string }[] = [];

afterAll(async () => {
  for (const { db, slot } of slots) {
    await db.query(`SELECT pg_drop_replication_slot('${slot}')`).catch(() => undefined);
    await db.end();
  }
});

describe('bad input', () => {
  it('an invalid config fails at start listing every problem, each with its view and field', async () => {
    const dir = mkdtempSync(join(scratchDir(), 'bad-config-'));
    const file = join(dir, 'views.config.mts');
    writeFileSync(
      file,
      `import { defineConfig, table, view, count, sum, eq } from ${JSON.stringify(join(process.cwd(), 'index.ts'))};
const orders = table('public.orders', { id: 'int4', status: 'text', note: 'text' }, { key: 'id' });
export default defineConfig({
  source: { kind: 'postgres', slot: 'Bad Slot' },
  views: {
    'bad-name': view(orders).select((o) => ({ id: o.id })),
    noKey: view(orders).select((o) => ({ status: o.status })),
    typo: view(orders).where((o) => eq(o.statsu, 'paid')).select((o) => ({ id: o.id })),
    sumOfText: view(orders).groupBy((o) => ({ status: o.status })).select((o) => ({ total: sum(o.note) })),
  },
});
`,
    );
    const failure = await run(process.execPath, [CLI, 'check', '--config', file]).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(2);
    const stderr = failure!.stderr;
    expect(stderr).toContain('Invalid config (5 problems)');
    expect(stderr).toContain("✖ Expected a lower-case PostgreSQL identifier (a-z, 0-9, _), but found 'Bad Slot'\n    → at source.slot");
    expect(stderr).toContain("✖ Expected a view name usable in GraphQL ([_A-Za-z][_0-9A-Za-z]*), but found 'bad-name'\n    → at views.bad-name");
    expect(stderr).toContain("✖ Expected the primary key column 'id' of public.orders among the selected fields");
    expect(stderr).toContain('→ at views.noKey.select');
    expect(stderr).toContain("✖ Expected a column of public.orders, but found 'statsu' (did you mean 'status'?)\n    → at views.typo.where");
    expect(stderr).toContain('✖ Expected sum() of a number, but found an expression of type text\n    → at views.sumOfText.select.total');
  });

  it('a table without a primary key fails at start, naming the table and the fix', async () => {
    const name = uniqueName('nopk');
    const databaseUrl = await createDatabase(inject('databaseUrl'), name, `CREATE TABLE events (id int4 NOT NULL, kind text NOT NULL)`);
    const events = table('public.events', { id: 'int4', kind: 'text' }, { key: 'id' });
    const config = defineConfig({
      name,
      source: source.postgres({ url: databaseUrl, slot: name, publication: name }),
      redis: { url: inject('redisUrl') },
      views: { eventsByKind: view(events).groupBy((e) => ({ kind: e.kind })).select(() => ({ events: count() })) },
    });
    const service = await startService({ config, port: 0, logger: quietLogger() });
    const error = await service.done.then(
      () => null,
      (e: unknown) => e,
    );
    await service.stop();
    expect(error).toBeInstanceOf(SourceSchemaError);
    expect((error as SourceSchemaError).problems).toEqual([
      'table public.events has no primary key, so its rows cannot be told apart in a change stream. Fix: ALTER TABLE public.events ADD PRIMARY KEY (id);',
      'table public.events has REPLICA IDENTITY DEFAULT, but eventsByKind aggregates it and needs the whole old row on UPDATE and DELETE. Fix: ALTER TABLE public.events REPLICA IDENTITY FULL;',
    ]);
  });

  it('a declared column the database lacks, or declares differently, is reported with the fix', async () => {
    const name = uniqueName('mismatch');
    const databaseUrl = await createDatabase(
      inject('databaseUrl'),
      name,
      `CREATE TABLE items (id int4 PRIMARY KEY, price text NOT NULL, qty int4); ALTER TABLE items REPLICA IDENTITY FULL`,
    );
    const items = table('public.items', { id: 'int4', price: 'numeric', qty: 'int4', colour: 'text' }, { key: 'id' });
    const config = defineConfig({
      name,
      source: source.postgres({ url: databaseUrl, slot: name, publication: name }),
      redis: { url: inject('redisUrl') },
      views: { stock: view(items).groupBy((i) => ({ colour: i.colour })).select((i) => ({ total: sum(i.price) })) },
    });
    const service = await startService({ config, port: 0, logger: quietLogger() });
    const error = (await service.done.catch((e: unknown) => e)) as SourceSchemaError;
    await service.stop();
    expect(error.problems).toEqual([
      "column public.items.price is declared 'numeric', but the database has 'text'; declare it as 'text'",
      "column public.items.qty is declared NOT NULL ('int4'), but the database allows NULL; declare it 'int4?' or add NOT NULL to the column",
      "column public.items.colour does not exist (declared as 'text')",
    ]);
  });

  it('a change a view cannot apply is parked in the dead-letter stream and counted; that view stops saying why, the others go on', async () => {
    const name = uniqueName('dlq');
    // REPLICA IDENTITY DEFAULT is enough for a rows view, until an UPDATE leaves a TOASTed column
    // out (unchanged) and sends no old row to take it from.
    const databaseUrl = await createDatabase(
      inject('databaseUrl'),
      name,
      `CREATE TABLE notes (id int4 PRIMARY KEY, title text NOT NULL, body text NOT NULL, words int4 NOT NULL);
       ALTER TABLE notes ALTER COLUMN body SET STORAGE EXTERNAL`,
    );
    const db = await connect(databaseUrl);
    slots.push({ db, slot: name });
    const body = 'x'.repeat(20_000); // stored out of line: an UPDATE of other columns sends it as "unchanged"
    await db.query(`INSERT INTO notes VALUES (1, 'first', $1, 1), (2, 'second', 'short', 2)`, [body]);
    const notes = table('public.notes', { id: 'int4', title: 'text', body: 'text', words: 'int4' }, { key: 'id' });
    const config = defineConfig({
      name,
      source: source.postgres({ url: databaseUrl, slot: name, publication: name }),
      redis: { url: inject('redisUrl') },
      views: {
        noteBodies: view(notes).select((n) => ({ id: n.id, body: n.body })),
        noteTitles: view(notes).select((n) => ({ id: n.id, title: n.title })),
      },
    });
    const redis = await connectRedis(inject('redisUrl'));
    const service = await startService({ config, port: 0, logger: quietLogger() });
    try {
      await waitForSync(db, redis, name, name);
      await db.query(`UPDATE notes SET title = 'first, renamed', words = 3 WHERE id = 1`);
      await db.query(`INSERT INTO notes VALUES (3, 'third', 'short', 3)`);
      await waitForSync(db, redis, name, name);

      const letters = await redis.sendCommand<[string, string[]][]>(['XRANGE', deadLetterKey(keyPrefix(name)), '-', '+']);
      const reasons = letters.map(([, fields]) => fields[fields.indexOf('reason') + 1]);
      expect(reasons).toEqual([
        "view noteBodies: column 'body' of public.notes was not sent (unchanged TOAST value) and its old value is unknown; set REPLICA IDENTITY FULL on public.notes",
      ]);
      const parked = JSON.parse(letters[0]![1][letters[0]![1].indexOf('change') + 1]!) as { view: string; change: { op: string; after: { title: string } } };
      expect(parked.change).toMatchObject({ op: 'u', after: { title: 'first, renamed' } });
      const metrics = await (await fetch(service.url.replace('/graphql', '/metrics'))).text();
      expect(metrics).toMatch(/^cdc_views_dead_letters_total [1-9]/m);
      expect(metrics).toMatch(/^cdc_views_view_state\{view="noteBodies",state="stopped"\} 1/m);

      // The view that missed a change is not served as if it were right …
      const response = await fetch(service.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ noteBodies(id: 2) { body } }' }),
      });
      const answer = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
      expect(answer.errors[0]!.extensions.code).toBe('VIEW_UNAVAILABLE');
      expect(answer.errors[0]!.message).toContain('View noteBodies is stopped: a change it could not apply was parked in the dead-letter stream');
      // … /ready says so …
      const ready = await fetch(service.url.replace('/graphql', '/ready'));
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { problems: string[] }).problems.join('\n')).toContain('view noteBodies is stopped');
      // … and the view that could apply the change has it, and later changes flow on.
      const data = await graphql<{ a: { title: string }; b: { title: string } }>(service.url, `{ a: noteTitles(id: 1) { title } b: noteTitles(id: 3) { title } }`);
      expect(data).toEqual({ a: { title: 'first, renamed' }, b: { title: 'third' } });
    } finally {
      await service.stop();
      await redis.quit();
    }
  });
});
