/**
 * Values stay exact (DESIGN.md §6.7): int8 near ±2^63, numerics with 30+ digits and mixed scales,
 * timestamps with microseconds. Sums run in Lua on decimal text and averages use PostgreSQL's
 * division scale, so the views equal PostgreSQL's own answers digit for digit.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divideDecimal } from '../../core/decimal.ts';
import { source } from '../../ingest/source-options.ts';
import { avg, count, max, min, sum, table, view } from '../../views/define.ts';
import { defineConfig } from '../../views/config.ts';
import { decimalText } from '../support/arbitraries.ts';
import { expectViewsEqualSql, startFixture, type ServiceFixture } from '../support/shop.ts';

const decimal = decimalText({ digits: 32, maxScale: 8 });
const int8 = fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }).map(String);

const ledger = table('public.ledger', { id: 'int8', account: 'int4', amount: 'numeric?', big: 'int8?', at: 'timestamptz' }, { key: 'id' });

describe('exact values', () => {
  let fixture: ServiceFixture;
  beforeAll(async () => {
    fixture = await startFixture('exact', {
      schema: `CREATE TABLE ledger (id int8 PRIMARY KEY, account int4 NOT NULL, amount numeric, big int8, at timestamptz NOT NULL);
               ALTER TABLE ledger REPLICA IDENTITY FULL;`,
      seed: `INSERT INTO ledger VALUES (9223372036854775807, 1, 12345678901234567890.123456789, 9223372036854775806, '2024-01-01 00:00:00.000001+00')`,
      config: (url, redisUrl, name) =>
        defineConfig({
          name,
          source: source.postgres({ url, slot: name, publication: name }),
          redis: { url: redisUrl },
          views: {
            accounts: view(ledger)
              .groupBy((l) => ({ account: l.account }))
              .select((l) => ({
                entries: count(),
                total: sum(l.amount),
                average: avg(l.amount),
                lowest: min(l.amount),
                highest: max(l.amount),
                bigTotal: sum(l.big),
                bigAverage: avg(l.big),
                biggest: max(l.big),
                latest: max(l.at),
              })),
            entries: view(ledger).select((l) => ({ id: l.id, amount: l.amount, big: l.big, at: l.at })),
          },
        }),
    });
  });
  afterAll(() => fixture?.close());

  it('sums, averages, min and max of huge and mixed-scale values equal PostgreSQL digit for digit', async () => {
    const entry = fc.record({
      id: fc.integer({ min: 1, max: 20 }),
      account: fc.integer({ min: 1, max: 3 }),
      amount: fc.option(decimal, { nil: null, freq: 6 }),
      big: fc.option(int8, { nil: null, freq: 6 }),
      micros: fc.integer({ min: 0, max: 999_999 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(entry, fc.boolean()), { minLength: 1, maxLength: 25 }), async (ops) => {
        for (const [e, remove] of ops) {
          await fixture.db.query(
            remove
              ? `DELETE FROM ledger WHERE id = ${e.id}`
              : `INSERT INTO ledger VALUES (${e.id}, ${e.account}, ${e.amount ?? 'NULL'}, ${e.big ?? 'NULL'}, '2025-03-04 05:06:07.${String(e.micros).padStart(6, '0')}+00')
                 ON CONFLICT (id) DO UPDATE SET account = EXCLUDED.account, amount = EXCLUDED.amount, big = EXCLUDED.big, at = EXCLUDED.at`,
          );
        }
        await fixture.sync();
        await expectViewsEqualSql(fixture.service.url, fixture.db, fixture.registry);
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });

  it('numeric division picks the same scale and rounding as PostgreSQL', async () => {
    await fc.assert(
      fc.asyncProperty(decimal, decimal.filter((d) => /[1-9]/.test(d)), async (a, b) => {
        const { rows } = await fixture.db.query<{ q: string }>(`SELECT ($1::numeric / $2::numeric)::text AS q`, [a, b]);
        expect(divideDecimal(a, b)).toBe(rows[0]!.q);
      }),
      { numRuns: 300 },
    );
  });
});
