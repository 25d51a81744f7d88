/**
 * The docs keep up with the code: every option of the config's types is in the configuration
 * reference, and every `cdc-views` command the README and docs/ show is run by some test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

/** The property names an interface declares (`readonly name?:`). */
function optionsOf(file: string, name: string): string[] {
  const text = read(file);
  const start = text.indexOf(`export interface ${name}`);
  if (start < 0) throw new Error(`no interface ${name} in ${file}`);
  let depth = 0;
  let end = text.indexOf('{', start);
  for (let i = end; i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) {
      end = i;
      break;
    }
  }
  const body = text.slice(text.indexOf('{', start), end);
  // Only the interface's own members (one level deep).
  return [...body.matchAll(/^ {2}readonly (\w+)\??:/gm)].map((m) => m[1]!).filter((n) => n !== 'kind');
}

describe('docs', () => {
  it('the configuration reference names every option', () => {
    const reference = read('docs/configuration.md');
    const interfaces: [string, string][] = [
      ['views/config.ts', 'Config'],
      ['views/config.ts', 'RedisOptions'],
      ['views/config.ts', 'ApiOptions'],
      ['views/config.ts', 'AuthOptions'],
      ['views/config.ts', 'JwtOptions'],
      ['views/config.ts', 'ViewPermission'],
      ['views/config.ts', 'CorsOptions'],
      ['views/config.ts', 'ApiLimits'],
      ['views/config.ts', 'MetricsOptions'],
      ['ingest/source-options.ts', 'PostgresSourceOptions'],
      ['ingest/source-options.ts', 'KafkaSourceOptions'],
      ['views/store/durability.ts', 'DurabilityOptions'],
      ['views/reactions.ts', 'ReactionOptions'],
    ];
    const missing = interfaces.flatMap(([file, name]) => optionsOf(file, name).filter((o) => !reference.includes(`\`${o}\``)).map((o) => `${name}.${o}`));
    expect(missing).toEqual([]);
    expect(optionsOf('views/config.ts', 'ApiLimits').length).toBeGreaterThan(5);
  });

  it('every cdc-views command the docs show is run by a test', () => {
    const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const shown = new Set<string>();
    for (const file of docs) {
      for (const [, block] of read(file).matchAll(/```sh\n([\s\S]*?)```/g)) {
        for (const m of block!.matchAll(/(?:npx )?cdc-views (\w[\w-]*)(?: (\w[\w-]*))?/g)) shown.add(m[2] && ['replay', 'drop'].includes(m[2]) ? `${m[1]} ${m[2]}` : m[1]!);
      }
    }
    const tests = readdirSync(join(root, 'test/integration')).map((f) => read(`test/integration/${f}`)).join('\n');
    // A test runs a command as `[CLI, '<command>', …]` or `cli(['<command>', …])` (or `startChildService`, which runs `start`).
    const run = (command: string): boolean => {
      const [first, second] = command.split(' ');
      if (first === 'start') return tests.includes('startChildService(');
      return new RegExp(`(CLI, |cli\\(\\[)'${first}'${second ? `, '${second}'` : ''}`).test(tests);
    };
    expect(shown.size).toBeGreaterThan(5);
    expect([...shown].filter((c) => !run(c))).toEqual([]);
  });
});
