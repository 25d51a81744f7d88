/**
 * Where `npm run demo` and `npm test` start, on a fresh clone too: plain Node, no dependencies (node_modules may
 * not exist yet).
 *
 *   node scripts/bootstrap.mjs demo                 npm ci if needed, then scripts/demo.ts (which provides
 *                                                   PostgreSQL and Redis through scripts/provision.ts)
 *   node scripts/bootstrap.mjs test [vitest args]   npm ci if needed, provide everything the suite needs, then
 *                                                   tsc --noEmit -p . and vitest run [vitest args]
 *   node scripts/bootstrap.mjs provision [need…]    npm ci if needed, provide (default: what the tests need)
 *
 * `npm ci` runs when node_modules is missing or differs from package-lock.json (compared with npm's own record
 * of what it installed, node_modules/.package-lock.json); otherwise nothing is installed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => void process.stdout.write(`${line}\n`);

/**
 * Why node_modules does not match the lockfile, or null when it does. `lock` is package-lock.json, `installed`
 * node_modules/.package-lock.json (null when missing). Optional packages may be absent (those of other
 * platforms are never installed); anything else missing, of another version, or not in the lockfile is stale.
 */
export function dependenciesStale(lock, installed) {
  if (!installed) return 'node_modules is missing';
  const want = lock?.packages ?? {};
  const have = installed.packages ?? {};
  for (const [path, entry] of Object.entries(want)) {
    if (!path.startsWith('node_modules/') && !path.includes('/node_modules/')) continue; // the root, workspaces
    const got = have[path];
    if (!got) {
      if (entry.optional || entry.devOptional) continue;
      return `${path} is not installed`;
    }
    if (got.version !== entry.version) return `${path} is ${got.version}, package-lock.json has ${entry.version}`;
  }
  for (const path of Object.keys(have)) {
    if (!(path in want)) return `${path} is not in package-lock.json`;
  }
  return null;
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

function ensureDependencies() {
  const lock = readJson(join(ROOT, 'package-lock.json'));
  const why = dependenciesStale(lock, readJson(join(ROOT, 'node_modules', '.package-lock.json')));
  if (!why) return;
  // The npm that runs us (npm_execpath), else the one on PATH.
  const execpath = process.env['npm_execpath'];
  const npm = execpath && /npm-cli\.c?js$/.test(execpath) ? [process.execPath, execpath] : ['npm'];
  // Dev dependencies too, whatever NODE_ENV says: the tests and the embedded PostgreSQL are among them.
  const args = [lock ? 'ci' : 'install', '--include=dev', '--no-audit', '--no-fund'];
  say(`bootstrap: ${why}: running npm ${args.join(' ')}`);
  const result = spawnSync(npm[0], [...npm.slice(1), ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error || result.status !== 0) {
    throw new Error(`npm ${args[0]} failed (${result.error ? String(result.error) : `exit status ${result.status}`}); its output is above.`);
  }
}

/** scripts/provision.ts, loaded through tsx once the dependencies are there. */
async function provisionModule() {
  const { tsImport } = await import('tsx/esm/api');
  return tsImport('./provision.ts', import.meta.url);
}

/** A package's program, run with this Node (no shell, no PATH lookup). */
function bin(pkg, name) {
  const manifest = readJson(join(ROOT, 'node_modules', pkg, 'package.json'));
  const path = typeof manifest?.bin === 'string' ? manifest.bin : manifest?.bin?.[name];
  if (!path) throw new Error(`${pkg} has no program ${name}; run npm ci`);
  return join(ROOT, 'node_modules', pkg, path);
}

/** Run a child to its end, passing on SIGINT/SIGTERM; resolve with its exit code. */
function runChild(program, args) {
  return new Promise((resolveExit) => {
    const child = spawn(process.execPath, [program, ...args], { cwd: ROOT, stdio: 'inherit' });
    const forward = (signal) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolveExit(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
  });
}

async function main(mode, rest) {
  ensureDependencies();
  if (mode === 'demo') {
    // In this process (no relay between a terminal's Ctrl-C and the demo's own clean-up).
    const { register } = await import('tsx/esm/api');
    register();
    await import('./demo.ts');
    return undefined;
  }
  const provision = await provisionModule();
  if (mode === 'provision') {
    const unknown = rest.filter((need) => !provision.NEEDS.includes(need));
    if (unknown.length > 0) throw new Error(`usage: unknown need ${unknown.join(', ')} (one of ${provision.NEEDS.join(', ')})`);
    const began = performance.now();
    const needs = rest.length > 0 ? rest : provision.testNeeds();
    const found = provision.provide(needs);
    for (const need of needs) say(`${need.padEnd(8)} ${found[need].path}`);
    say(`bootstrap: ready in ${Math.round(performance.now() - began)} ms`);
    return 0;
  }
  if (mode === 'test') {
    provision.provide(provision.testNeeds());
    const typecheck = await runChild(bin('typescript', 'tsc'), ['--noEmit', '-p', '.']);
    if (typecheck !== 0) return typecheck;
    return runChild(bin('vitest', 'vitest'), ['run', ...rest]);
  }
  throw new Error(`usage: node scripts/bootstrap.mjs demo | test [vitest args] | provision [need…] (got ${mode ?? 'nothing'})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [mode, ...rest] = process.argv.slice(2);
  main(mode, rest).then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (error) => {
      const known = error?.name === 'ProvisionError' || /^(npm|usage)/.test(String(error?.message));
      process.stderr.write(`${known ? error.message : (error?.stack ?? String(error))}\n`);
      process.exitCode = 1;
    },
  );
}
