/**
 * Throwaway PostgreSQL and Redis servers for the demo, the tests and the benchmark (DESIGN.md §9):
 * each starts in a temporary folder on a free loopback port and is removed by `stop()`.
 *
 *   const pg = await startPostgres();   // initdb + postgres -c wal_level=logical
 *   const redis = await startRedis();   // redis-server --save '' --appendonly no
 *   …
 *   await pg.stop(); await redis.stop();
 *
 * Binaries come from PATH, or for PostgreSQL from `pg_config --bindir` (Debian keeps them off PATH).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ThrowawayServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  stop(): Promise<void>;
}

/** A free TCP port on loopback, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export class MissingBinaryError extends Error {
  constructor(binary: string, hint: string) {
    super(`Expected the '${binary}' program, but it is not installed or not on PATH. ${hint}`);
    this.name = 'MissingBinaryError';
  }
}

function onPath(binary: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary);
  }
  return null;
}

/** Where PostgreSQL's server binaries live: PATH, or `pg_config --bindir`, or Debian's default folders. */
export function postgresBinDir(): string {
  const fromPath = onPath('initdb');
  if (fromPath) return dirname(realpathSync(fromPath));
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    // fall through to the well-known folders
  }
  for (const version of ['17', '16', '15', '14']) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  throw new MissingBinaryError(
    'initdb',
    'Install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), or set DATABASE_URL to an existing server with wal_level=logical.',
  );
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export interface PostgresOptions {
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
}

/** initdb into a temporary folder and start PostgreSQL with wal_level=logical on a free port. */
export async function startPostgres(options: PostgresOptions = {}): Promise<ThrowawayServer> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  // PostgreSQL refuses to run as root; on machines where we are root, the server runs as nobody.
  const asUser = process.getuid?.() === 0 ? nobodyIds() : undefined;
  if (asUser) chownSync(dir, asUser.uid, asUser.gid);
  try {
    execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'], {
      stdio: 'pipe',
      ...asUser,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${String((error as { stderr?: Buffer }).stderr ?? error)}`);
  }
  const settings: Record<string, string> = {
    wal_level: 'logical',
    max_replication_slots: '20',
    max_wal_senders: '20',
    fsync: 'off',
    full_page_writes: 'off',
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    max_connections: '200',
    ...options.settings,
  };
  const args = ['-D', data, '-p', String(port)];
  for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
  // detached: a terminal's Ctrl-C goes to our process group; the server stops when we stop it.
  const child = spawn(join(bin, 'postgres'), args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...asUser,
  });
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    const text = chunk.toString();
    output.push(text);
    options.log?.(text);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const stop = async (): Promise<void> => {
    await stopProcess(child, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited: ${output.join('')}`);
      return (await canConnect(port)) && isAcceptingConnections(bin, port);
    }, 'PostgreSQL to accept connections');
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dir, stop };
}

function isAcceptingConnections(bin: string, port: number): boolean {
  try {
    execFileSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

let nobody: { uid: number; gid: number } | undefined;
function nobodyIds(): { uid: number; gid: number } {
  if (!nobody) {
    const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
    nobody = { uid, gid };
  }
  return nobody;
}

export interface RedisOptions {
  /** Turn on the append-only file (for durability tests). */
  readonly appendonly?: boolean;
}

/** Start redis-server in a temporary folder on a free port, persistence off unless asked. */
export async function startRedis(options: RedisOptions = {}): Promise<ThrowawayServer> {
  const binary = onPath('redis-server');
  if (!binary) {
    throw new MissingBinaryError(
      'redis-server',
      'Install Redis 7 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), or set REDIS_URL to an existing server.',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-redis-'));
  const port = await freePort();
  const config = [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    "save ''",
    `appendonly ${options.appendonly ? 'yes' : 'no'}`,
    'appendfsync everysec',
    'maxmemory-policy noeviction',
  ].join('\n');
  writeFileSync(join(dir, 'redis.conf'), `${config}\n`);
  const child = spawn(binary, [join(dir, 'redis.conf')], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout?.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr?.on('data', (c: Buffer) => output.push(c.toString()));
  const stop = async (): Promise<void> => {
    await stopProcess(child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output.join('')}`);
      return canConnect(port);
    }, 'Redis to accept connections');
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, port, dir, stop };
}
