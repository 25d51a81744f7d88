import { describe, expect, it } from 'vitest';
import { crossedAbove, crossedBelow, kinds, type ReactionChange } from '../../../views/reactions.ts';

type Row = { stock: string | null; reorderLevel: number };
const change = (previous: Row | null, row: Row | null): ReactionChange<Row> => ({
  view: 'v',
  kind: previous === null ? 'entered' : row === null ? 'left' : 'changed',
  row,
  previous,
  version: '1-0',
});
const r = (stock: string | null, reorderLevel = 10): Row => ({ stock, reorderLevel });

describe('reaction filters', () => {
  it('crossedBelow: from at or above (or absent) to below, against a number or another field', () => {
    const below = crossedBelow<Row>((x) => x.stock, (x) => x.reorderLevel);
    expect(below(change(r('12'), r('9')))).toBe(true);
    expect(below(change(r('10'), r('9.5')))).toBe(true);
    expect(below(change(null, r('3')))).toBe(true); // entered below
    expect(below(change(r('9'), r('3')))).toBe(false); // already below
    expect(below(change(r('3'), r('12')))).toBe(false); // went up
    expect(below(change(r('12'), null))).toBe(false); // left
    expect(below(change(r(null), r('3')))).toBe(true); // from unknown
    expect(below(change(r('12'), r(null)))).toBe(false); // to unknown
    expect(below(change(r('12', 10), r('12', 20)))).toBe(true); // the threshold moved past it
    expect(crossedBelow<Row>((x) => x.stock, 5)(change(r('6'), r('5')))).toBe(false);
  });

  it('crossedAbove: from below (or absent) to at or above', () => {
    const above = crossedAbove<Row>((x) => x.stock, 10);
    expect(above(change(r('9.99'), r('10')))).toBe(true);
    expect(above(change(null, r('11')))).toBe(true);
    expect(above(change(r('11'), r('12')))).toBe(false);
    expect(above(change(r('12'), r('9')))).toBe(false);
  });

  it('kinds selects by what happened to the row', () => {
    const entered = kinds<Row>('entered', 'left');
    expect([change(null, r('1')), change(r('1'), r('2')), change(r('1'), null)].map((c) => entered(c))).toEqual([true, false, true]);
  });
});
