/**
 * The oracle, property-based: random workloads of inserts, updates (group-key and primary-key
 * changes included), deletes, NULLs, truncates and rolled-back transactions, in multi-statement
 * transactions on PostgreSQL; after the service catches up, every view read through GraphQL equals
 * the view's SQL run on PostgreSQL.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { startService, type Service } from '../../api/service.ts';
import { connectRedis, type RedisClient } from '../../views/apply/redis.ts';
import { createRegistry } from '../../views/registry.ts';
import { connect, createDatabase, expectViewsEqualSql, shopTestConfig, uniqueName, waitForSync } from '../support/shop.ts';
import { quietLogger } from '../support/logger.ts';
import { workload } from '../support/workload.ts';

describe('differential: views equal their SQL after random workloads', () => {
  const name = uniqueName('diff');
  let service: Service;
  let db: pg.Client;
  let redis: RedisClient;
  const config = { registry: null as ReturnType<typeof createRegistry> | null };

  beforeAll(async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    await db.query(`INSERT INTO orders VALUES (1, 1, 'paid', 10.50, now()), (2, 1, 'paid', NULL, now()), (3, 2, 'new', 7.25, now())`);
    const cfg = shopTestConfig(databaseUrl, inject('redisUrl'), name);
    config.registry = createRegistry(cfg);
    service = await startService({ config: cfg, port: 0, logger: quietLogger() });
    redis = await connectRedis(inject('redisUrl'));
    await waitForSync(db, redis, name, name);
  });

  afterAll(async () => {
    await service?.stop();
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  it('the initial snapshot equals SQL', async () => {
    await expectViewsEqualSql(service.url, db, config.registry!);
  });

  it('after any workload of transactions (commits and rollbacks), every view equals SQL', async () => {
    await fc.assert(
      fc.asyncProperty(workload, async (transactions) => {
        for (const t of transactions) {
          await db.query(`BEGIN; ${t.statements.join('; ')}; ${t.rollback ? 'ROLLBACK' : 'COMMIT'}`);
        }
        await waitForSync(db, redis, name, name);
        await expectViewsEqualSql(service.url, db, config.registry!);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });
});
