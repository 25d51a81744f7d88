import { expectTypeOf, test } from 'vitest';
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
  type InferRow,
} from 'cdc-views';
import type { Columns } from '../../views/define.ts';

const orders = table(
  'public.orders',
  {
    id: 'int4',
    big: 'int8',
    small: 'int2',
    name: 'text',
    code: 'bpchar',
    amount: 'numeric?',
    price: 'numeric',
    ratio: 'float8',
    paid: 'bool',
    created_at: 'timestamptz',
    day: 'date',
    local: 'timestamp',
  },
  { key: 'id' },
);
/** The column references a where/groupBy/select callback receives. */
declare const o: Columns<typeof orders.specs>;

test('text functions: length is int4, like is bool, nullable as their arguments', () => {
  expectTypeOf(length(o.name)).toEqualTypeOf<Expr<'int4', false>>();
  expectTypeOf(length(o.code)).toEqualTypeOf<Expr<'int4', false>>();
  expectTypeOf(like(o.name, 'A%')).toEqualTypeOf<Expr<'bool', false>>();
  // A pattern from a column may end in a lone escape character: NULL, so nullable.
  expectTypeOf(notLike(o.name, o.name)).toEqualTypeOf<Expr<'bool', true>>();
  // @ts-expect-error length of a number
  length(o.id);
  // @ts-expect-error a bpchar pattern (PostgreSQL would trim it)
  like(o.name, o.code);
});

test('numbers: mod, abs and round keep PostgreSQL’s result types', () => {
  expectTypeOf(mod(o.id, 7)).toEqualTypeOf<Expr<'int4', false>>();
  expectTypeOf(mod(o.id, 0)).toEqualTypeOf<Expr<'int4', true>>();
  expectTypeOf(mod(o.id, o.id)).toEqualTypeOf<Expr<'int4', true>>();
  expectTypeOf(mod(o.big, 7)).toEqualTypeOf<Expr<'int8', false>>();
  expectTypeOf(mod(o.small, o.small)).toEqualTypeOf<Expr<'int2', true>>();
  expectTypeOf(mod(o.price, 2.5)).toEqualTypeOf<Expr<'numeric', false>>();
  expectTypeOf(mod(o.id, 2.5)).toEqualTypeOf<Expr<'numeric', false>>();
  // @ts-expect-error PostgreSQL has no float % float
  mod(o.ratio, 2);

  expectTypeOf(abs(o.price)).toEqualTypeOf<Expr<'numeric', false>>();
  expectTypeOf(abs(o.amount)).toEqualTypeOf<Expr<'numeric', true>>();
  expectTypeOf(abs(o.ratio)).toEqualTypeOf<Expr<'float8', false>>();
  // abs(-2147483648) is out of range: NULL
  expectTypeOf(abs(o.id)).toEqualTypeOf<Expr<'int4', true>>();

  expectTypeOf(round(o.price, 2)).toEqualTypeOf<Expr<'numeric', false>>();
  expectTypeOf(round(o.amount, 2)).toEqualTypeOf<Expr<'numeric', true>>();
  expectTypeOf(round(o.price)).toEqualTypeOf<Expr<'numeric', false>>();
  expectTypeOf(round(o.ratio)).toEqualTypeOf<Expr<'float8', false>>();
  expectTypeOf(round(o.id)).toEqualTypeOf<Expr<'float8', false>>();
  expectTypeOf(round(o.id, 1)).toEqualTypeOf<Expr<'numeric', false>>();
  // @ts-expect-error PostgreSQL has no round(float8, integer)
  round(o.ratio, 2);
});

test('caseWhen: the common type, nullable unless every branch and otherwise are non-null', () => {
  expectTypeOf(caseWhen(o.paid, 'yes').otherwise('no')).toEqualTypeOf<Expr<'text', false>>();
  expectTypeOf(caseWhen(o.paid, 'yes')).toExtend<Expr<'text', true>>();
  expectTypeOf(caseWhen(o.paid, o.price).otherwise(0)).toEqualTypeOf<Expr<'numeric', false>>();
  expectTypeOf(caseWhen(o.paid, o.id).when(gt(o.price, 10), o.big).otherwise(1)).toEqualTypeOf<
    Expr<'int8', false>
  >();
  expectTypeOf(caseWhen(o.paid, o.amount).otherwise('0')).toEqualTypeOf<Expr<'numeric', true>>();
  expectTypeOf(caseWhen(o.paid, o.id).otherwise(o.ratio)).toEqualTypeOf<Expr<'float8', false>>();
  // numeric converted to float8 fails beyond float8's range (PostgreSQL's error; NULL here)
  expectTypeOf(caseWhen(o.paid, o.price).otherwise(o.ratio)).toEqualTypeOf<Expr<'float8', true>>();
  expectTypeOf(caseWhen(o.paid, 2.5).otherwise(o.ratio)).toEqualTypeOf<Expr<'float8', false>>();
  expectTypeOf(caseWhen(o.paid, o.created_at).otherwise('2024-01-01')).toEqualTypeOf<
    Expr<'timestamptz', false>
  >();
  // @ts-expect-error text and numbers do not meet
  caseWhen(o.paid, o.name).otherwise(o.id);
});

test('cast: the target type, nullable when a value may not convert', () => {
  expectTypeOf(cast(o.id, 'int8')).toEqualTypeOf<Expr<'int8', false>>();
  expectTypeOf(cast(o.price, 'int4')).toEqualTypeOf<Expr<'int4', true>>();
  expectTypeOf(cast(o.ratio, 'text')).toEqualTypeOf<Expr<'text', false>>();
  expectTypeOf(cast(o.name, 'int4')).toEqualTypeOf<Expr<'int4', true>>();
  expectTypeOf(cast(o.created_at, 'date')).toEqualTypeOf<Expr<'date', false>>();
  expectTypeOf(cast(o.amount, 'float8')).toEqualTypeOf<Expr<'float8', true>>();
  expectTypeOf(cast('42', 'int4')).toEqualTypeOf<Expr<'int4', true>>();
  // @ts-expect-error no cast from timestamptz to int4
  cast(o.created_at, 'int4');
  // @ts-expect-error no cast from text to float8 (cast to numeric first)
  cast(o.name, 'float8');
});

test('dateTrunc and between', () => {
  expectTypeOf(dateTrunc('day', o.created_at)).toEqualTypeOf<Expr<'timestamptz', false>>();
  expectTypeOf(dateTrunc('week', o.local)).toEqualTypeOf<Expr<'timestamp', false>>();
  expectTypeOf(dateTrunc('month', o.day)).toEqualTypeOf<Expr<'timestamp', false>>();
  // @ts-expect-error not a unit
  dateTrunc('decade', o.created_at);
  // @ts-expect-error not a date/time
  dateTrunc('day', o.name);
  expectTypeOf(between(o.price, 1, 10)).toEqualTypeOf<Expr<'bool', false>>();
  expectTypeOf(between(o.amount, 1, 10)).toEqualTypeOf<Expr<'bool', true>>();
  // a numeric beyond float8's range cannot be compared with a float (PostgreSQL's error; NULL here)
  expectTypeOf(between(o.ratio, o.price, 10)).toEqualTypeOf<Expr<'bool', true>>();
  expectTypeOf(between(o.ratio, 0.5, 10)).toEqualTypeOf<Expr<'bool', false>>();
});

test('InferRow of views using them', () => {
  const daily = view(orders)
    .where((r) => eq(mod(r.id, 7), 0))
    .groupBy((r) => ({
      day: dateTrunc('day', r.created_at),
      size: caseWhen(gt(r.price, 100), 'large').otherwise('small'),
    }))
    .select((r) => ({
      orders: count(),
      units: sum(cast(r.price, 'int4')),
      revenue: sum(round(r.amount, 1)),
    }));
  expectTypeOf<InferRow<typeof daily>>().toEqualTypeOf<{
    day: string;
    size: string;
    orders: string;
    units: string | null;
    revenue: string | null;
  }>();
  const rows = view(orders).select((r) => ({
    id: r.id,
    nameLength: length(r.name),
    whole: round(r.ratio),
    label: caseWhen(r.paid, r.name),
  }));
  expectTypeOf<InferRow<typeof rows>>().toEqualTypeOf<{
    id: number;
    nameLength: number;
    whole: number;
    label: string | null;
  }>();
});
