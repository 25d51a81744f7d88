/**
 * `node scripts/node-release.mjs <major>`: a Node.js release line for this platform, from the npm registry
 * (the `node-<platform>-<arch>` packages hold the official binaries), kept in ~/.cache/cdc-views; prints
 * its bin folder. CI runs the unit tests and the quick start on Node 22 with it beside the default Node
 * (.ci/run): Node 20 reached its end of life in April 2026.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const major = process.argv[2];
if (!/^\d+$/.test(major ?? '')) {
  process.stderr.write('usage: node scripts/node-release.mjs <major>   (e.g. 22)\n');
  process.exit(2);
}
const pkg = `node-${process.platform}-${process.arch}`;
const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cdc-views');
const dir = join(cache, `node-${major}-${process.platform}-${process.arch}`);
const bin = join(dir, 'bin');

function run(argv, cwd) {
  const result = spawnSync(argv[0], argv.slice(1), { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) {
    process.stderr.write(`node-release: \`${argv.join(' ')}\` failed (${result.status ?? result.error?.message})\n`);
    process.exit(1);
  }
  return result.stdout;
}

if (!existsSync(join(bin, 'node'))) {
  const work = join(cache, `.node-${major}-${process.pid}`);
  mkdirSync(work, { recursive: true });
  process.stderr.write(`node-release: fetching ${pkg}@${major} from the npm registry…\n`);
  run(['npm', 'pack', `${pkg}@${major}`, '--silent'], work);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  run(['tar', 'xzf', tarball], work);
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(work, 'package'), dir);
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${bin}\n`);
