import { describe, expect, it } from 'vitest';
import { gt, lt, sub, table, view } from '../../../views/define.ts';
import type { Issue } from '../../../views/errors.ts';
import { crossedAbove, crossedBelow, describeCondition, kinds, matches, reaction, validateReactions, type ReactionChange, type When } from '../../../views/reactions.ts';

const products = table('public.products', { id: 'int4', stock: 'int4?', reorder_level: 'int4', price: 'numeric' }, { key: 'id' });
const stock = view(products).select((p) => ({ id: p.id, stock: p.stock, reorderLevel: p.reorder_level, price: p.price }));
type Cols = Parameters<Parameters<typeof stock.having>[0]>[0];

type Row = { id: number; stock: number | null; reorderLevel: number; price: string };
const change = (previous: Row | null, row: Row | null): ReactionChange<Row> => ({
  view: 'stock',
  kind: previous === null ? 'entered' : row === null ? 'left' : 'changed',
  row,
  previous,
  version: '1-0',
});
const r = (stockLevel: number | null, reorderLevel = 10, price = '1.00'): Row => ({ id: 1, stock: stockLevel, reorderLevel, price });
/** Whether a reaction with this condition handles the change. */
const selects = (when: When<Cols> | When<Cols>[], c: ReactionChange<Row>): boolean =>
  reaction(stock, { when, handler: async () => undefined }).selects(c as ReactionChange<Record<string, unknown>>);

describe('reaction conditions', () => {
  it('crossedBelow: from at or above (or absent) to below, against a number or another field', () => {
    const below = crossedBelow<Cols>((x) => x.stock, (x) => x.reorderLevel);
    expect(selects(below, change(r(12), r(9)))).toBe(true);
    expect(selects(below, change(r(10), r(9)))).toBe(true);
    expect(selects(below, change(null, r(3)))).toBe(true); // entered below
    expect(selects(below, change(r(9), r(3)))).toBe(false); // already below
    expect(selects(below, change(r(3), r(12)))).toBe(false); // went up
    expect(selects(below, change(r(12), null))).toBe(false); // left
    expect(selects(below, change(r(null), r(3)))).toBe(true); // from unknown
    expect(selects(below, change(r(12), r(null)))).toBe(false); // to unknown
    expect(selects(below, change(r(12, 10), r(12, 20)))).toBe(true); // the threshold moved past it
    expect(selects(crossedBelow<Cols>((x) => x.stock, 5), change(r(6), r(5)))).toBe(false);
  });

  it('crossedAbove: from below (or absent) to at or above, exact on decimals', () => {
    const above = crossedAbove<Cols>((x) => x.price, '10.00');
    expect(selects(above, change(r(1, 1, '9.99'), r(1, 1, '10')))).toBe(true);
    expect(selects(above, change(r(1, 1, '9.999999999999999999'), r(1, 1, '10.000000000000000001')))).toBe(true);
    expect(selects(above, change(null, r(1, 1, '11')))).toBe(true);
    expect(selects(above, change(r(1, 1, '11'), r(1, 1, '12')))).toBe(false);
    expect(selects(above, change(r(1, 1, '12'), r(1, 1, '9')))).toBe(false);
  });

  it('matches: a predicate over the row after and before, NULL selecting nothing; several conditions all hold', () => {
    const dropped = matches<Cols>((x, before) => gt(sub(before.stock, x.stock), 5));
    expect(selects(dropped, change(r(20), r(14)))).toBe(true);
    expect(selects(dropped, change(r(20), r(15)))).toBe(false);
    expect(selects(dropped, change(null, r(1)))).toBe(false); // no row before: NULL
    expect(selects([kinds('changed'), matches<Cols>((x) => lt(x.stock, 3))], change(r(5), r(2)))).toBe(true);
    expect(selects([kinds('entered'), matches<Cols>((x) => lt(x.stock, 3))], change(r(5), r(2)))).toBe(false);
  });

  it('kinds selects by what happened to the row', () => {
    expect([change(null, r(1)), change(r(1), r(2)), change(r(1), null)].map((c) => selects(kinds('entered', 'left'), c))).toEqual([true, false, true]);
  });

  it('reads as SQL in status, and a field the view lacks is a config error naming it', () => {
    const def = reaction(stock, { when: [crossedBelow((x) => x.stock, (x) => x.reorderLevel), matches((x, before) => gt(x.price, before.price))], handler: async () => undefined });
    expect(def.conditions.map(describeCondition)).toEqual(['"stock" crossed below "reorderLevel"', '("price" > "previous"."price")']);
    const typo = reaction(stock, { when: crossedBelow((x) => (x as unknown as Record<string, typeof x.stock>)['stok']!, 5), handler: async () => undefined });
    const issues: Issue[] = [];
    validateReactions({ typo }, { stock }, issues);
    expect(issues).toEqual([{ path: 'reactions.typo.when', message: "Expected a field of the view (id, stock, reorderLevel, price), but found 'stok'" }]);
  });
});
