/**
 * Starting MariaDB (startMariaDb): a throwaway server with the row-based binlog Debezium reads.
 *
 *
 *   startMariaDb()            mariadb-install-db  →  mariadbd --log-bin --binlog-format=ROW --binlog-row-image=FULL
 *     └─ on 127.0.0.1:<free>, in a temp dir, root + a `debezium` replication user
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, MissingBinaryError } from '../servers.ts';
import {
  captureOutput,
  defaultLog,
  exited,
  findBinary,
  liveDirs,
  type Log,
  run,
  sleep,
  spawnServer,
  stopChild,
  tail,
  track,
  untrackDir,
} from './processes.ts';

export interface MariaDbOptions {
  readonly log?: Log;
  /** The server's `server_id` (default 1). Debezium's own `database.server.id` must differ from it. */
  readonly serverId?: number;
  readonly startTimeoutMs?: number;
}

export interface RunningMariaDb {
  /** `mysql://root:<pw>@127.0.0.1:<port>/` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** A user with only what Debezium needs (REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, SHOW DATABASES, LOCK TABLES). */
  readonly replicationUser: { readonly user: string; readonly password: string };
  readonly serverId: number;
  readonly dir: string;
  /** Run SQL as root with the `mariadb` client (batch mode: tab-separated rows, no header). */
  sql(statements: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/local/mysql/bin', '/usr/local/bin'];

/** Start a throwaway MariaDB (binlog on, ROW/FULL) in a temp dir on a free loopback port. */
export async function startMariaDb(options: MariaDbOptions = {}): Promise<RunningMariaDb> {
  const log = options.log ?? defaultLog;
  const hint =
    'Install the MariaDB server and client (Debian/Ubuntu: apt-get install mariadb-server mariadb-client).';
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db'], SBIN);
  const server = findBinary(['mariadbd', 'mysqld'], SBIN);
  const client = findBinary(['mariadb', 'mysql'], SBIN);
  if (!installDb) throw new MissingBinaryError('mariadb-install-db', hint);
  if (!server) throw new MissingBinaryError('mariadbd', hint);
  if (!client) throw new MissingBinaryError('mariadb', hint);
  const began = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-mariadb-'));
  liveDirs.add(dir);
  const data = join(dir, 'data');
  const socket = join(dir, 'mariadb.sock');
  const errorLog = join(dir, 'error.log');
  mkdirSync(join(dir, 'binlog'));
  const port = await freePort();
  const password = randomBytes(9).toString('base64url');
  const replicationUser = { user: 'debezium', password: randomBytes(9).toString('base64url') };
  const serverId = options.serverId ?? 1;
  // mariadbd refuses to run as root unless told to; a throwaway server in our own temp dir may.
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child) await stopChild(child, 'SIGTERM', 20_000);
    untrackDir(dir);
  };
  try {
    await run(
      installDb,
      [
        '--no-defaults',
        `--datadir=${data}`,
        ...asRoot,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        // Its own temporary files in our folder, as the server's: once, in CI, the bootstrap's
        // temporary table in the shared /tmp vanished under it ('Could not remove temporary table').
        `--tmpdir=${dir}`,
      ],
      {
        what: 'Initialising MariaDB (mariadb-install-db)',
        hint,
      },
    );
    child = spawnServer(
      server,
      [
        '--no-defaults',
        `--datadir=${data}`,
        ...asRoot,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${socket}`,
        `--pid-file=${join(dir, 'mariadb.pid')}`,
        `--log-error=${errorLog}`,
        `--tmpdir=${dir}`,
        '--skip-name-resolve',
        `--log-bin=${join(dir, 'binlog', 'mariadb-bin')}`,
        `--server-id=${serverId}`,
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--innodb-buffer-pool-size=64M',
        '--performance-schema=OFF',
        '--max-connections=100',
      ],
      dir,
      true,
    );
    track(child, dir);
    const output = captureOutput(child);
    const started = child;
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    const rootSql = (sql: string, user: string[]): Promise<string> =>
      run(
        client,
        ['--no-defaults', `--socket=${socket}`, ...user, '--batch', '--skip-column-names', '-e', sql],
        {
          what: 'MariaDB',
          hint: `The server log is ${errorLog}.`,
        },
      );
    for (;;) {
      if (exited(started)) {
        throw new Error(
          `MariaDB: expected mariadbd to keep running, but it exited with ${started.exitCode ?? started.signalCode}.\n${output()}\n${tail(errorLog)}`,
        );
      }
      if (
        existsSync(socket) &&
        (await rootSql('SELECT 1', ['--user=root']).then(
          () => true,
          () => false,
        ))
      )
        break;
      if (Date.now() > deadline)
        throw new Error(
          `MariaDB: expected it to accept connections on ${socket} in time, but it did not.\n${tail(errorLog)}`,
        );
      await sleep(100);
    }
    const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
    await rootSql(
      [
        `ALTER USER 'root'@'localhost' IDENTIFIED BY ${q(password)}`,
        `CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY ${q(password)}`,
        `GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION`,
        `CREATE OR REPLACE USER ${q(replicationUser.user)}@'%' IDENTIFIED BY ${q(replicationUser.password)}`,
        `GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES ON *.* TO ${q(replicationUser.user)}@'%'`,
        'FLUSH PRIVILEGES',
      ].join(';\n'),
      ['--user=root'],
    );
    const sql = (statements: string, database?: string): Promise<string> =>
      run(
        client,
        [
          '--no-defaults',
          '--host=127.0.0.1',
          `--port=${port}`,
          '--user=root',
          `--password=${password}`,
          '--batch',
          '--skip-column-names',
          ...(database ? [`--database=${database}`] : []),
        ],
        { what: 'MariaDB', hint: `The server log is ${errorLog}.`, input: statements },
      );
    log(`MariaDB up on 127.0.0.1:${port} in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return {
      url: `mysql://root:${encodeURIComponent(password)}@127.0.0.1:${port}/`,
      host: '127.0.0.1',
      port,
      user: 'root',
      password,
      replicationUser,
      serverId,
      dir,
      sql,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
