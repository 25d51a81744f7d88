/**
 * The README's main command, exactly as written there, on a machine with no DATABASE_URL or
 * REDIS_URL: it starts throwaway servers, serves a view over GraphQL, pushes live changes, and
 * Ctrl-C stops everything and removes the throwaway servers.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/servers.ts';
import { graphql } from '../support/shop.ts';

/** The commands of the README's "Quick start" block. */
export function quickStartCommands(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split('## Quick start')[1] ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
}

describe('quick start', () => {
  it('the README test command is what CI runs', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const testBlock = /## Tests\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1]?.trim();
    expect(testBlock).toBe('npm test');
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8').trim().split('\n');
    expect(ci.at(-1)).toBe(testBlock);
  });

  it('the README main command starts, serves a view over GraphQL, and stops cleanly on Ctrl-C', async () => {
    const commands = quickStartCommands();
    const demo = commands.find((c) => c.startsWith('npm run'));
    expect(commands).toContain('npm ci');
    expect(demo).toBe('npm run demo');

    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()) };
    delete env['DATABASE_URL'];
    delete env['REDIS_URL'];
    // Its own process group, like a terminal's foreground job: Ctrl-C signals every process in it.
    const [program, ...args] = demo!.split(' ');
    const child = spawn(program!, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    // 'close': every process holding the output pipes has ended, the demo's node process included.
    const closed = new Promise<number | NodeJS.Signals>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal!)));
    const waitFor = async (pattern: RegExp, timeoutMs = 90_000): Promise<RegExpExecArray> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`Expected ${pattern} in the demo's output:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      const [, url] = await waitFor(/GraphQL ready at (http:\/\/\S+)/);
      const data = await graphql<{ revenueByCustomer: { orders: string; revenue: string } }>(
        url!,
        '{ revenueByCustomer(customerId: 7) { orders revenue } }',
      );
      expect(Number(data.revenueByCustomer.orders)).toBeGreaterThan(0);
      const graphiql = await fetch(url!, { headers: { accept: 'text/html' } });
      expect(await graphiql.text()).toContain('GraphiQL');
      await waitFor(/live ▸ revenueByCustomer\[customerId=\d+\]/, 30_000);
    } finally {
      process.kill(-child.pid!, 'SIGINT');
    }
    // npm itself may die of the interrupt; what matters is that the demo cleaned up and said so.
    expect([0, 130, 'SIGINT']).toContain(await closed);
    expect(output).toContain('demo stopped');
    const removed = [...output.matchAll(/removed (\S+)/g)].map((m) => m[1]!);
    expect(removed).toHaveLength(2);
    for (const dir of removed) expect(existsSync(dir)).toBe(false);
  }, 180_000);
});
