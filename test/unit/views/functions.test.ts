/**
 * The scalar functions (mod, between, like, notLike, caseWhen, length, abs, round, cast, dateTrunc):
 * what validation says about wrong arguments, the SQL each prints, and a few values.
 * test/integration/expressions.test.ts checks the values against PostgreSQL itself.
 */
import { describe, expect, it } from 'vitest';
import { source } from '../../../ingest/source-options.ts';
import {
  abs,
  between,
  cast,
  caseWhen,
  count,
  dateTrunc,
  eq,
  gt,
  length,
  like,
  mod,
  notLike,
  round,
  sum,
  table,
  view,
  type Expr,
  type ViewDef,
} from '../../../views/define.ts';
import { ConfigError } from '../../../views/errors.ts';
import { evaluate } from '../../../views/plan/evaluate.ts';
import { createRegistry } from '../../../views/registry.ts';
import { exprToSql } from '../../../views/sql.ts';

const t = table(
  'public.t',
  {
    id: 'int4',
    n: 'numeric?',
    i: 'int4',
    b: 'int8',
    f: 'float8',
    s: 'text',
    c: 'bpchar',
    ok: 'bool',
    at: 'timestamptz',
    day: 'date',
    doc: 'json?',
  },
  { key: 'id' },
);

function issuesOf(views: Record<string, unknown>): string[] {
  try {
    createRegistry({ source: source.postgres(), views: views as Record<string, ViewDef> });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  return [];
}

/** The columns, typed loosely: these tests pass wrong types on purpose. */
type Loose = Readonly<Record<keyof typeof t.columns, Expr<never, boolean>>>;

/** A rows view selecting `e` as field `e`. */
const selecting = (e: (r: Loose) => Expr) =>
  view(t).select((r) => ({ id: r.id, e: e(r as unknown as Loose) }));

describe('validation of the scalar functions', () => {
  it('reports wrong argument types, each with its view and field', () => {
    const x = (r: unknown, c: keyof Loose): never => (r as Loose)[c] as never;
    expect(
      issuesOf({
        modOfFloat: selecting((r) => mod(x(r, 'f'), 2)),
        modOfText: selecting((r) => mod(x(r, 's'), x(r, 'i'))),
        betweenMixed: view(t)
          .where((r) => between(r.s, r.i, 'z'))
          .select((r) => ({ id: r.id })),
        likeOfNumber: view(t)
          .where((r) => like(x(r, 'i'), 'a%'))
          .select((r) => ({ id: r.id })),
        likeBpcharPattern: view(t)
          .where((r) => notLike(r.s, x(r, 'c')))
          .select((r) => ({ id: r.id })),
        trailingEscape: view(t)
          .where((r) => like(r.s, 'abc\\'))
          .select((r) => ({ id: r.id })),
        caseMixed: selecting((r) => caseWhen(r.ok, r.s).otherwise(x(r, 'i'))),
        caseCondition: selecting((r) => caseWhen(x(r, 'i'), 1)),
        lengthOfNumber: selecting((r) => length(x(r, 'n'))),
        absOfText: selecting((r) => abs(x(r, 's'))),
        roundOfText: selecting((r) => round(x(r, 's'))),
        roundFloatDigits: selecting((r) => round(x(r, 'f'), 2)),
        roundDigits: selecting((r) => round(r.n, 1.5)),
        castTarget: selecting((r) => cast(r.i, 'money' as never)),
        castUnsupported: selecting((r) => cast(x(r, 'at'), 'int4')),
        castTextToFloat: selecting((r) => cast(x(r, 's'), 'float8')),
        castTextToTimestamptz: selecting((r) => cast(x(r, 's'), 'timestamptz')),
        castInt8ToBool: selecting((r) => cast(x(r, 'b'), 'bool')),
        castJson: selecting((r) => cast(x(r, 'doc'), 'text')),
        truncUnit: view(t)
          .groupBy((r) => ({ d: dateTrunc('decade' as never, r.at) }))
          .select(() => ({ n: count() })),
        truncText: view(t)
          .groupBy((r) => ({ d: dateTrunc('day', x(r, 's')) }))
          .select(() => ({ n: count() })),
        badLiteral: view(t)
          .where((r) => between(r.at, 'yesterday', '2024-01-01'))
          .select((r) => ({ id: r.id })),
        badNumberLiteral: view(t)
          .where((r) => between(r.i, '1O', 5))
          .select((r) => ({ id: r.id })),
      }),
    ).toEqual([
      'views.modOfFloat.select.e: Expected integers or numerics in mod(), but found float8 and int4',
      'views.modOfText.select.e: Expected integers or numerics in mod(), but found text and int4',
      'views.betweenMixed.where: Expected comparable types in between(), but found text and int4',
      'views.likeOfNumber.where: Expected text in like(), but found int4',
      'views.likeBpcharPattern.where: Expected a text pattern in notLike(), but found bpchar',
      "views.trailingEscape.where: Expected a LIKE pattern that does not end with the escape character '\\', but found 'abc\\'",
      'views.caseMixed.select.e: Expected branches of one type in caseWhen(), but found int4 and text',
      'views.caseCondition.select.e: Expected a boolean condition in caseWhen(), but found int4',
      'views.lengthOfNumber.select.e: Expected text in length(), but found numeric',
      'views.absOfText.select.e: Expected a number in abs(), but found text',
      'views.roundOfText.select.e: Expected a number in round(), but found text',
      'views.roundFloatDigits.select.e: Expected a numeric or integer in round(x, digits), but found float8 (PostgreSQL has no round(float8, integer)); cast it to numeric first',
      "views.roundDigits.select.e: Expected round()'s digits to be an integer literal, but found '1.5'",
      "views.castTarget.select.e: Expected a cast target (int2, int4, int8, numeric, float8, text, bool, date, timestamp, timestamptz), but found 'money'",
      'views.castUnsupported.select.e: Expected a cast from timestamptz to text, date, timestamp, timestamptz, but found a cast to int4',
      'views.castTextToFloat.select.e: Expected a cast from text to int2, int4, int8, numeric, text, bool, date, but found a cast to float8; cast to numeric, then to float8',
      "views.castTextToTimestamptz.select.e: Expected a cast from text to int2, int4, int8, numeric, text, bool, date, but found a cast to timestamptz; PostgreSQL reads such text in the session's TimeZone and DateStyle, so the view could not match it",
      'views.castInt8ToBool.select.e: Expected a cast from int8 to int2, int4, int8, numeric, float8, text, but found a cast to bool; PostgreSQL casts only int4 to bool',
      'views.castJson.select.e: Expected a cast from json to nothing, but found a cast to text',
      "views.truncUnit.groupBy.d: Expected a unit of dateTrunc() (microseconds, milliseconds, second, minute, hour, day, week, month, quarter, year), but found 'decade'",
      'views.truncText.groupBy.d: Expected a date, timestamp or timestamptz in dateTrunc(), but found text',
      "views.badLiteral.where: Expected a timestamptz literal like '2024-01-02 03:04:05+00', but found 'yesterday'",
      "views.badNumberLiteral.where: Expected a literal PostgreSQL reads as int4, but found '1O'",
    ]);
  });

  it('accepts the functions as group keys, filters and aggregate arguments', () => {
    const v = view(t)
      .where((r) => eq(mod(r.id, 7), 0))
      .groupBy((r) => ({
        day: dateTrunc('day', r.at),
        size: caseWhen(gt(r.n, 1000), 'large').when(gt(r.n, 100), 'medium').otherwise('small'),
      }))
      .select((r) => ({ orders: count(), total: sum(round(r.n, 1)), units: sum(cast(r.n, 'int4')) }));
    const registry = createRegistry({ source: source.postgres(), views: { v } });
    expect(registry.views[0]!.fields.map((f) => [f.name, f.type, f.nullable])).toEqual([
      ['day', 'timestamptz', false],
      ['size', 'text', false],
      ['orders', 'int8', false],
      ['total', 'numeric', true],
      ['units', 'int8', true],
    ]);
    expect(registry.views[0]!.sql).toBe(
      [
        `SELECT date_trunc('day', "t"."at", 'UTC') AS "day", CASE WHEN ("t"."n" > '1000'::numeric) THEN 'large' WHEN ("t"."n" > '100'::numeric) THEN 'medium' ELSE 'small' END AS "size", count(*) AS "orders", sum(round("t"."n", 1)) AS "total", sum(CAST("t"."n" AS int4)) AS "units"`,
        'FROM "public"."t" AS "t"',
        'WHERE (("t"."id" % 7) = 0)',
        `GROUP BY date_trunc('day', "t"."at", 'UTC'), CASE WHEN ("t"."n" > '1000'::numeric) THEN 'large' WHEN ("t"."n" > '100'::numeric) THEN 'medium' ELSE 'small' END`,
      ].join('\n'),
    );
  });
});

describe('the SQL each function prints', () => {
  const r = {
    i: { node: { kind: 'column', table: 'public.t', column: 'i', type: 'int4', nullable: false } } as Expr<
      'int4',
      false
    >,
  };
  const col = <T extends string>(column: string, type: T, nullable = false) =>
    ({ node: { kind: 'column', table: 'public.t', column, type, nullable } }) as unknown as Expr<
      T & never,
      false
    >;
  it.each(
    [
      [mod(r.i, 7), '("i" % 7)', 'int4', false],
      [mod(r.i, col('b', 'int8')), '("i" % NULLIF("b", 0))', 'int8', true],
      [mod(col('n', 'numeric'), '0.5'), `("n" % NULLIF('0.5'::numeric, 0))`, 'numeric', true],
      [between(col('s', 'text'), 'a', 'm'), `("s" COLLATE "C" BETWEEN 'a' AND 'm')`, 'bool', false],
      [
        between(col('at', 'timestamptz'), '2024-01-01', '2024-02-01 12:00+00'),
        `("at" BETWEEN '2024-01-01T00:00:00Z'::timestamptz AND '2024-02-01T12:00:00Z'::timestamptz)`,
        'bool',
        false,
      ],
      [like(col('s', 'text'), '100\\%%'), `("s" LIKE '100\\%%')`, 'bool', false],
      [notLike(col('s', 'text'), col('p', 'text')), '("s" NOT LIKE "p")', 'bool', true],
      [
        caseWhen(col('ok', 'bool'), 1).when(col('ok2', 'bool'), 2.5),
        `CASE WHEN "ok" THEN 1 WHEN "ok2" THEN '2.5'::numeric END`,
        'numeric',
        true,
      ],
      [length(col('s', 'text')), 'length("s")', 'int4', false],
      [abs(r.i), 'abs(NULLIF("i", -2147483648))', 'int4', true],
      [abs(col('n', 'numeric')), 'abs("n")', 'numeric', false],
      [round(r.i), 'round("i")', 'float8', false],
      [round(r.i, 2), 'round("i", 2)', 'numeric', false],
      [cast(col('s', 'text'), 'int8'), 'CAST("s" AS int8)', 'int8', true],
      [cast(r.i, 'int8'), 'CAST("i" AS int8)', 'int8', false],
      [dateTrunc('week', col('ts', 'timestamp')), `date_trunc('week', "ts")`, 'timestamp', false],
      [
        dateTrunc('month', col('day', 'date')),
        `date_trunc('month', CAST("day" AS timestamp))`,
        'timestamp',
        false,
      ],
    ].map(([e, ...rest]) => [(rest as string[])[0], e, ...rest]) as [string, Expr, string, string, boolean][],
  )('%s', (_, e, sql, type, nullable) => {
    expect([exprToSql(e.node), e.node.type, e.node.nullable]).toEqual([sql, type, nullable]);
  });
});

describe('values', () => {
  const row = {
    i: -7,
    n: '-2.50',
    s: 'héllo 😀',
    c: 'ab  ',
    at: '2024-03-31T01:30:00.123456Z',
    ts: '2021-01-03T23:59:59.999999',
    f: 2.5,
    z: 0,
  };
  const col = (column: keyof typeof row, type: string) =>
    ({ node: { kind: 'column', table: 'public.t', column, type, nullable: false } }) as unknown as Expr<
      never,
      false
    >;
  it.each(
    [
      [mod(col('i', 'int4'), 3), -1],
      [mod(col('n', 'numeric'), '0.3'), '-0.10'],
      [mod(col('i', 'int4'), col('z', 'int4')), null],
      [like(col('s', 'text'), 'h_llo _'), true],
      [like(col('s', 'text'), 'H%'), false],
      [length(col('s', 'text')), 7],
      [length(col('c', 'bpchar')), 2],
      [abs(col('n', 'numeric')), '2.50'],
      [round(col('n', 'numeric')), '-3'],
      [round(col('f', 'float8')), 2],
      [round(col('n', 'numeric'), 1), '-2.5'],
      [cast(col('f', 'float8'), 'int4'), 2],
      [cast(col('n', 'numeric'), 'int4'), -3],
      [cast(col('at', 'timestamptz'), 'text'), '2024-03-31 01:30:00.123456+00'],
      [cast(col('at', 'timestamptz'), 'date'), '2024-03-31'],
      [dateTrunc('week', col('ts', 'timestamp')), '2020-12-28T00:00:00'],
      [dateTrunc('hour', col('at', 'timestamptz')), '2024-03-31T01:00:00Z'],
      [caseWhen(gt(col('i', 'int4'), 0), 'positive').otherwise(col('s', 'text')), 'héllo 😀'],
    ].map(([e, expected]) => [
      `${exprToSql((e as Expr).node)} = ${JSON.stringify(expected)}`,
      e,
      expected,
    ]) as [string, Expr, unknown][],
  )('%s', (_, e, expected) => {
    expect(evaluate(e.node, row)).toEqual(expected);
  });
});
