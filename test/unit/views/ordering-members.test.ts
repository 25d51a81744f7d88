/**
 * Ordering members carry `ORDER BY <terms>, <key>` into Redis's byte order: for any two rows, the
 * byte order of their members is the SQL order of the rows (ASC NULLS LAST, DESC NULLS FIRST,
 * decimals exact, text by code point, timestamps to the microsecond), ties broken by the key.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalText } from '../../support/arbitraries.ts';
import { compareBytes, encodeRowKey, memberKey, orderingMember } from '../../../core/encoding.ts';
import type { ColumnType, Value } from '../../../core/values.ts';

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** Reference orders, written independently of the encoding. */
function exactDecimal(text: string): [bigint, number] {
  const [int, frac = ''] = text.replace('-', '').split('.');
  const unscaled = BigInt(`${int}${frac}`) * (text.startsWith('-') ? -1n : 1n);
  return [unscaled, frac.length];
}
function compareReference(type: ColumnType, a: Value, b: Value): number {
  switch (type) {
    case 'numeric': {
      const [x, sx] = exactDecimal(String(a));
      const [y, sy] = exactDecimal(String(b));
      const scale = Math.max(sx, sy);
      const d = x * 10n ** BigInt(scale - sx) - y * 10n ** BigInt(scale - sy);
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    }
    case 'int8':
      return sign(Number(BigInt(String(a)) - BigInt(String(b))));
    case 'int4':
      return sign((a as number) - (b as number));
    case 'bool':
      return a === b ? 0 : a ? 1 : -1;
    case 'timestamptz': {
      const micros = (t: string): bigint => BigInt(Date.parse(t)) * 1000n + BigInt((/\.(\d+)/.exec(t)?.[1] ?? '').padEnd(6, '0').slice(3));
      const d = micros(String(a)) - micros(String(b));
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    }
    default: {
      const x = Array.from(String(a), (c) => c.codePointAt(0)!);
      const y = Array.from(String(b), (c) => c.codePointAt(0)!);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return sign(x[i]! - y[i]!);
      return sign(x.length - y.length);
    }
  }
}

const timestamp = fc
  .tuple(fc.integer({ min: 0, max: 4102444800 }), fc.integer({ min: 0, max: 999_999 }))
  .map(([s, us]) => `${new Date(s * 1000).toISOString().slice(0, 19)}${us ? `.${String(us).padStart(6, '0').replace(/0+$/, '')}` : ''}Z`);

const VALUES: Record<string, fc.Arbitrary<Value>> = {
  numeric: decimalText({ digits: 40, maxScale: 20 }),
  int8: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
  int4: fc.integer(),
  bool: fc.boolean(),
  timestamptz: timestamp,
  text: fc.string({ unit: 'grapheme', maxLength: 6 }),
};
const TYPES = Object.keys(VALUES) as ColumnType[];

/** A random ordering (types and directions), and rows over it with a small int key (ties happen). */
const case_ = fc
  .array(fc.record({ type: fc.constantFrom(...TYPES), desc: fc.boolean() }), { minLength: 1, maxLength: 3 })
  .chain((terms) => {
    const value = (t: ColumnType): fc.Arbitrary<Value> => fc.option(fc.oneof(VALUES[t]!, VALUES[t]!), { nil: null, freq: 4 });
    const row = fc.tuple(fc.tuple(...terms.map((t) => value(t.type))), fc.integer({ min: -3, max: 3 }));
    return fc.tuple(fc.constant(terms), row, row);
  });

describe('ordering members', () => {
  it('byte order of members is SQL ORDER BY <terms>, key (NULLs last ascending, first descending)', () => {
    fc.assert(
      fc.property(case_, ([terms, [va, ka], [vb, kb]]) => {
        const named = terms.map((t, i) => ({ field: `f${i}`, type: t.type, desc: t.desc }));
        const rowOf = (values: Value[]): Record<string, Value> => Object.fromEntries(values.map((v, i) => [`f${i}`, v]));
        const ma = orderingMember(named, rowOf(va), encodeRowKey(['int4'], [ka]));
        const mb = orderingMember(named, rowOf(vb), encodeRowKey(['int4'], [kb]));
        let expected = 0;
        for (let i = 0; i < terms.length && expected === 0; i++) {
          const [x, y] = [va[i] ?? null, vb[i] ?? null];
          const { type, desc } = terms[i]!;
          // PostgreSQL: NULL is larger than every value (last ascending, first descending).
          const c = x === null && y === null ? 0 : x === null ? 1 : y === null ? -1 : compareReference(type, x, y);
          expected = desc ? -c : c;
        }
        if (expected === 0) expected = sign(ka - kb);
        expect(sign(compareBytes(ma, mb))).toBe(expected);
        expect(memberKey(ma)).toBe(encodeRowKey(['int4'], [ka]));
      }),
      { numRuns: 5000 },
    );
  });

  it('decimals with many digits, negatives and scales compare exactly, never through a float', () => {
    const m = (v: string, desc = false): string => orderingMember([{ field: 'x', type: 'numeric', desc }], { x: v }, '\x01b');
    // Equal as doubles, different as decimals.
    expect(compareBytes(m('9007199254740993.000000000000000001'), m('9007199254740993.000000000000000002'))).toBe(-1);
    expect(compareBytes(m('-0.00000000000000000001'), m('0'))).toBe(-1);
    expect(compareBytes(m('-10'), m('-9.99999999999999999999'))).toBe(-1);
    expect(compareBytes(m('1.50'), m('1.5'))).toBe(0);
    expect(compareBytes(m('-10', true), m('-9.99999999999999999999', true))).toBe(1);
  });
});
