/**
 * Starts the real servers the suite talks to, once per run: throwaway PostgreSQL (wal_level=logical)
 * and Redis (binaries from scripts/provision.ts), unless DATABASE_URL / REDIS_URL point at existing ones. Test files read the URLs with
 * `inject('databaseUrl')` / `inject('redisUrl')` and isolate themselves (own database, slot, key prefix).
 */
import type {} from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { provide, serverNeeds } from '../../scripts/provision.ts';
import { startPostgres, startRedis, type ThrowawayServer } from '../../scripts/servers.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
  }
}

const started: ThrowawayServer[] = [];
let scratch: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // Config files and other scratch of this run live here and go with it (child processes read the env).
  scratch = mkdtempSync(join(tmpdir(), 'cdc-views-tests-'));
  process.env['CDC_VIEWS_SCRATCH'] = scratch;
  // `npm test` provided everything before vitest started; this is for `npx vitest` on its own (a no-op when present).
  provide(serverNeeds());
  const [databaseUrl, redisUrl] = await Promise.all([
    process.env['DATABASE_URL'] ?? startPostgres().then((s) => (started.push(s), s.url)),
    process.env['REDIS_URL'] ?? startRedis().then((s) => (started.push(s), s.url)),
  ]);
  project.provide('databaseUrl', databaseUrl);
  project.provide('redisUrl', redisUrl);
}

export async function teardown(): Promise<void> {
  await Promise.all(started.map((s) => s.stop()));
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
