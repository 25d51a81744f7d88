/**
 * Throwaway PostgreSQL and Redis servers for the demo, the tests and the benchmark (DESIGN.md §9):
 * each starts in a temporary folder on a free loopback port and is removed by `stop()`.
 *
 *   const pg = await startPostgres();   // initdb + postgres -c wal_level=logical
 *   const redis = await startRedis();   // redis-server --save '' --appendonly no
 *   …
 *   await pg.stop(); await redis.stop();
 *
 * Binaries come from scripts/provision.ts's `locate()`: the machine's (PATH, `pg_config --bindir`, the usual
 * folders), or PostgreSQL embedded from npm; `provide()` (the demo, the tests, the bench) installs what is missing.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  existsSync,
  linkSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  copyFileSync,
  cpSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fixFor, locate } from './provision.ts';

export interface ThrowawayServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  stop(): Promise<void>;
  /** Crash it: SIGKILL, data left as a crash leaves it (for fault tests). */
  kill(): Promise<void>;
  /** Start it again on the same port and data (after kill(), or a clean restart when running). */
  restart(): Promise<void>;
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

/** Where PostgreSQL's server binaries live: the machine's, or the embedded PostgreSQL from npm (provision.ts). */
export function postgresBinDir(): string {
  const found = locate('postgres');
  if (found) return found.path;
  throw new MissingBinaryError(
    'initdb',
    `\`npm run demo\` and \`npm test\` set PostgreSQL up themselves; by hand: ${fixFor('postgres')}. Or set DATABASE_URL to an existing server with wal_level=logical.`,
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

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface GuardedProcess {
  /** The guard (sh); the server is its child, in the same process group. */
  readonly child: ChildProcess;
  /** Stop the server (its stop signal, then SIGKILL after `graceMs`, 10 s by default) and wait until its folder is removed. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL the server and its guard at once (a crash, for tests). */
  kill(): void;
  /** kill(), then wait until the process is gone. */
  killAndWait(): Promise<void>;
}

/**
 * Start a server that cannot outlive us. It runs under a small shell guard in its own process
 * group (a terminal's Ctrl-C reaches us, not it), whose stdin is a pipe from this process: when
 * we stop it, or die in any way (even SIGKILL), the pipe closes, the guard sends the server its
 * stop signal, waits for it, and removes its folder.
 *
 *   sh -c 'exec 3<&0; <server> </dev/null & pid=$!; (read _ <&3; kill -<sig> $pid) & wait $pid; rm -rf <dir>'
 *
 * (A background job's stdin is /dev/null in sh; fd 3 keeps the pipe for the watcher.)
 */
export function spawnGuarded(
  command: string,
  args: readonly string[],
  /**
   * `dir`: removed once the server is gone, except while a file `.restarting` is in it (a server
   * stopped or crashed on purpose, to start again on its data: see `markRestarting`).
   */
  options: { dir?: string; stopSignal: 'INT' | 'TERM'; uid?: number; gid?: number; cwd?: string },
): GuardedProcess {
  const server = [command, ...args].map(shellQuote).join(' ');
  const cleanup = options.dir ? `[ -e ${shellQuote(join(options.dir, '.restarting'))} ] || rm -rf ${shellQuote(options.dir)}; ` : '';
  const script = `exec 3<&0; ${server} </dev/null 3<&- & pid=$!; (read _ <&3; kill -${options.stopSignal} $pid 2>/dev/null) & exec 3<&-; wait $pid; status=$?; ${cleanup}exit $status`;
  const child = spawn('sh', ['-c', script], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  child.stdin!.on('error', () => undefined);
  const stop = (graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    // Closing the pipe is the stop signal: the watcher in the guard signals the server.
    return new Promise((resolve) => {
      // The server ignored its stop signal: kill the whole guarded group.
      const timer = setTimeout(() => kill(), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin!.end();
    });
  };
  const kill = (): void => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const killAndWait = (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      kill();
    });
  };
  return { child, stop, kill, killAndWait };
}

export interface PostgresOptions {
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
}

/** initdb into a temporary folder and start PostgreSQL with wal_level=logical on a free port. */
export async function startPostgres(options: PostgresOptions = {}): Promise<ThrowawayServer> {
  let bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  // PostgreSQL refuses to run as root; on machines where we are root, the server runs as nobody.
  const asUser = process.getuid?.() === 0 ? nobodyIds() : undefined;
  if (asUser) chownSync(dir, asUser.uid, asUser.gid);
  // nobody may not reach binaries under a private folder (the embedded PostgreSQL in a clone under /root or
  // a mktemp folder): then the server runs from a linked copy of its tree in its own folder, removed with it.
  if (asUser && !runnableBy(asUser, join(bin, 'initdb'))) bin = join(linkTree(dirname(bin), join(dir, 'pg'), asUser), 'bin');
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
  // A restart keeps the folder (markRestarting); otherwise the guard removes it with the server.
  const launch = async (): Promise<GuardedProcess> => {
    const guarded = spawnGuarded(join(bin, 'postgres'), args, { dir, stopSignal: 'INT', ...asUser });
    const child = guarded.child;
    const output: string[] = [];
    const collect = (chunk: Buffer): void => {
      const text = chunk.toString();
      output.push(text);
      options.log?.(text);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited: ${output.join('')}`);
      return (await canConnect(port)) && isAcceptingConnections(bin, port, data);
    }, 'PostgreSQL to accept connections');
    return guarded;
  };
  let current: GuardedProcess | null = null;
  const stop = async (): Promise<void> => {
    await current?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    current = await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stop,
    async kill() {
      markRestarting(dir, true);
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      await current?.killAndWait();
      // The guard is gone; the postmaster (reparented) may take a moment to die, and a new one
      // refuses to start while its pid file names a live process.
      await waitFor(() => !processAlive(pid), 'the killed postmaster to exit');
    },
    async restart() {
      markRestarting(dir, true);
      await current?.stop();
      current = await launch();
      markRestarting(dir, false);
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** While `.restarting` is in a server's folder, its guard leaves the folder when the server ends. */
function markRestarting(dir: string, on: boolean): void {
  if (on) writeFileSync(join(dir, '.restarting'), '');
  else rmSync(join(dir, '.restarting'), { force: true });
}

function isAcceptingConnections(bin: string, port: number, data: string): boolean {
  if (!existsSync(join(bin, 'pg_isready'))) {
    // The embedded PostgreSQL has no pg_isready: the postmaster marks itself ready in postmaster.pid (as pg_ctl -w reads it).
    try {
      return readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[7]?.trim() === 'ready';
    } catch {
      return false;
    }
  }
  try {
    execFileSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Whether a user may run a program (every folder on its path searchable by them). */
function runnableBy(user: { uid: number; gid: number }, program: string): boolean {
  return spawnSync('test', ['-x', program], { ...user, stdio: 'ignore' }).status === 0;
}

/**
 * A copy of a folder tree whose files are hard links (copies across file systems), folders owned by `user`
 * so that the server's guard, running as that user, can remove it.
 */
function linkTree(from: string, to: string, user: { uid: number; gid: number }): string {
  mkdirSync(to, { mode: 0o755 });
  chownSync(to, user.uid, user.gid);
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) linkTree(source, target, user);
    else if (entry.isSymbolicLink()) {
      symlinkSync(readlinkSync(source), target);
      lchownSync(target, user.uid, user.gid);
    } else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target);
      }
    }
  }
  return to;
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
  /** With appendonly: when Redis fsyncs it (default everysec). */
  readonly appendfsync?: 'always' | 'everysec' | 'no';
  /** RDB snapshots: `save` rules, e.g. '1 1' (default none). */
  readonly save?: string;
  /** maxmemory, e.g. '64mb' (noeviction: writes fail beyond it). */
  readonly maxmemory?: string;
}

export interface RedisServer extends ThrowawayServer {
  /** The server's data folder (dump.rdb, appendonlydir). */
  readonly dataDir: string;
  /** Start again with the data as it is now — or, with `from`, after replacing the data folder by that copy (an older backup). */
  restart(options?: { from?: string }): Promise<void>;
}

/** Start redis-server in a temporary folder on a free port, persistence off unless asked. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = locate('redis')?.path;
  if (!binary) {
    throw new MissingBinaryError(
      'redis-server',
      `\`npm run demo\` and \`npm test\` install Redis themselves when they may; by hand: ${fixFor('redis')}. Or set REDIS_URL to an existing server.`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-redis-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const port = await freePort();
  const config = [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dataDir}`,
    `save '${options.save ?? ''}'`,
    `appendonly ${options.appendonly ? 'yes' : 'no'}`,
    `appendfsync ${options.appendfsync ?? 'everysec'}`,
    'maxmemory-policy noeviction',
    ...(options.maxmemory ? [`maxmemory ${options.maxmemory}`] : []),
  ].join('\n');
  writeFileSync(join(dir, 'redis.conf'), `${config}\n`);
  const launch = async (): Promise<GuardedProcess> => {
    const guarded = spawnGuarded(binary, [join(dir, 'redis.conf')], { dir, stopSignal: 'TERM' });
    const child = guarded.child;
    const output: string[] = [];
    child.stdout?.on('data', (c: Buffer) => output.push(c.toString()));
    child.stderr?.on('data', (c: Buffer) => output.push(c.toString()));
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output.join('')}`);
      return (await canConnect(port)) && (await redisLoaded(port));
    }, 'Redis to accept connections');
    return guarded;
  };
  let current: GuardedProcess | null = null;
  const stop = async (): Promise<void> => {
    await current?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    current = await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    dataDir,
    stop,
    async kill() {
      markRestarting(dir, true);
      await current?.killAndWait();
      await waitFor(async () => !(await canConnect(port)), 'the killed redis-server to let its port go');
    },
    async restart(restartOptions = {}) {
      markRestarting(dir, true);
      await current?.stop();
      if (restartOptions.from) {
        rmSync(dataDir, { recursive: true, force: true });
        cpSync(restartOptions.from, dataDir, { recursive: true });
      }
      current = await launch();
      markRestarting(dir, false);
    },
  };
}

/** Redis answers PING with PONG once it has loaded its data (LOADING errors before). */
function redisLoaded(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.startsWith('+PONG'));
      }
    });
    socket.once('error', () => resolve(false));
  });
}
