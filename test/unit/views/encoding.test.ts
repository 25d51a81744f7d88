/**
 * Order keys carry SQL order into Redis's byte order: for any two values, comparing their order
 * keys as bytes gives the same answer as comparing the values.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalText } from '../../support/arbitraries.ts';
import { compareDecimal } from '../../../core/decimal.ts';
import { candidateMember, candidateValue, compareBytes, encodeRowKey, orderKey } from '../../../core/encoding.ts';

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const decimal = decimalText({ digits: 30, maxScale: 12 });
const timestamp = fc
  .tuple(fc.integer({ min: 0, max: 4102444800 }), fc.integer({ min: 0, max: 999_999 }))
  .map(([s, us]) => `${new Date(s * 1000).toISOString().slice(0, 19)}${us ? `.${String(us).padStart(6, '0').replace(/0+$/, '')}` : ''}Z`);

describe('order keys', () => {
  it('numerics (any sign, scale and size) compare like their values', () => {
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        expect(sign(compareBytes(orderKey('numeric', a), orderKey('numeric', b)))).toBe(compareDecimal(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it('floats and int4 compare like numbers', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ noNaN: true, noDefaultInfinity: true }), (a, b) => {
        expect(sign(compareBytes(orderKey('float8', a), orderKey('float8', b)))).toBe(sign(a === b ? 0 : a - b));
      }),
      { numRuns: 2000 },
    );
  });

  it('timestamps with any fraction compare in time order', () => {
    fc.assert(
      fc.property(timestamp, timestamp, (a, b) => {
        const ms = (t: string): number => Date.parse(t) * 1000 + Number((/\.(\d+)/.exec(t)?.[1] ?? '').padEnd(6, '0').slice(3));
        expect(sign(compareBytes(orderKey('timestamptz', a), orderKey('timestamptz', b)))).toBe(sign(ms(a) - ms(b)));
      }),
      { numRuns: 2000 },
    );
  });

  it('row keys order tuples lexicographically, NULLs last, and text by code point', () => {
    fc.assert(
      fc.property(fc.tuple(fc.option(fc.string(), { nil: null }), fc.integer()), fc.tuple(fc.option(fc.string(), { nil: null }), fc.integer()), (a, b) => {
        const ka = encodeRowKey(['text', 'int4'], a);
        const kb = encodeRowKey(['text', 'int4'], b);
        const first = a[0] === b[0] ? 0 : a[0] === null ? 1 : b[0] === null ? -1 : compareBytes(a[0], b[0]);
        const expected = first !== 0 ? first : sign(a[1] - b[1]);
        expect(sign(compareBytes(ka, kb))).toBe(sign(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('min/max candidates give back the exact value', () => {
    for (const [type, value] of [['numeric', '1.50'], ['int4', -3], ['float8', 0.1], ['text', 'naïve'], ['timestamptz', '2024-01-01T00:00:00.5Z'], ['bool', true], ['int8', '9223372036854775807']] as const) {
      expect(candidateValue(type, candidateMember(type, value))).toEqual(value);
    }
  });
});
