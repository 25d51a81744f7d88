/**
 * One connection to the database a CLI command reads the catalog of, from its URL:
 * postgres:// or postgresql:// through `pg`, mysql:// or mariadb:// through `mysql2` (loaded only
 * then). Connection failures become CliErrors naming the server and the cause, never the password.
 */
import pg from 'pg';
import type { Dialect, Query } from './catalog.ts';
import { CliError, usageError } from './errors.ts';

export interface DatabaseConnection {
  readonly dialect: Dialect;
  /** The URL without user and password, for messages and generated headers. */
  readonly label: string;
  /** The database named in the URL (MySQL/MariaDB: the default for --schema). */
  readonly database: string;
  readonly query: Query;
  close(): Promise<void>;
}

const EXPECTED = 'a database URL like postgres://user:password@host:5432/db or mysql://user:password@host:3306/db';

/** Parse and check a database URL: exit code 2 when it is not one. */
export function parseDatabaseUrl(url: string | undefined): { url: URL; dialect: Dialect } {
  if (!url) throw usageError(`Expected --database <url> (or $DATABASE_URL): ${EXPECTED}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`Expected ${EXPECTED}, but found '${redact(url)}'`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme === 'postgres' || scheme === 'postgresql') return { url: parsed, dialect: 'postgres' };
  if (scheme === 'mysql' || scheme === 'mariadb') return { url: parsed, dialect: 'mysql' };
  throw usageError(`Expected ${EXPECTED}, but found a ${scheme}: URL`);
}

/** A URL as it may be printed: no user, no password. */
export function labelOf(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  copy.search = '';
  return copy.toString();
}

function redact(text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//…@');
}

/** Connect, or fail with exit code 1 naming the server and why. */
export async function connectDatabase(rawUrl: string | undefined): Promise<DatabaseConnection> {
  const { url, dialect } = parseDatabaseUrl(rawUrl);
  const label = labelOf(url);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const failed = (error: unknown): CliError => {
    const e = error as { code?: string; message?: string };
    const reason = e.code === 'ECONNREFUSED' ? `connection refused (is the server running and listening there?)` : (e.message ?? String(error));
    return new CliError(1, `Cannot connect to ${label}: ${reason}`, { cause: error });
  };
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    await client.connect().catch((error: unknown) => {
      throw failed(error);
    });
    return {
      dialect,
      label,
      database,
      query: async <R extends object>(sql: string, params: readonly unknown[]) => (await client.query(sql, [...params])).rows as R[],
      close: () => client.end(),
    };
  }
  const mysql = await import('mysql2/promise');
  const mysqlUrl = new URL(url.toString());
  mysqlUrl.protocol = 'mysql:';
  const connection = await mysql.createConnection({ uri: mysqlUrl.toString(), connectTimeout: 10_000 }).catch((error: unknown) => {
    throw failed(error);
  });
  return {
    dialect,
    label,
    database,
    query: async <R extends object>(sql: string, params: readonly unknown[]) => (await connection.query(sql, [...params]))[0] as R[],
    close: () => connection.end(),
  };
}
