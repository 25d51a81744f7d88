import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalText } from '../../support/arbitraries.ts';
import { addDecimal, compareDecimal, decimalFromUnscaled, formatDecimal, multiplyDecimal, parseDecimal } from '../../../core/decimal.ts';

const decimal = decimalText({ digits: 40, maxScale: 15, leadingZeros: 3 });

/** Exact rational comparison by cross-scaling BigInts. */
function reference(a: string, b: string): number {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const d = x.unscaled * 10n ** BigInt(y.scale) - y.unscaled * 10n ** BigInt(x.scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

describe('decimal', () => {
  it('compares decimal text exactly, whatever the signs, scales and leading zeros', () => {
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        expect(compareDecimal(a, b)).toBe(reference(a, b));
      }),
      { numRuns: 5000 },
    );
    expect(compareDecimal('-0.00', '0')).toBe(0);
    expect(compareDecimal('1e3', '999.9')).toBe(1);
  });

  it('adds and multiplies exactly, keeping the largest scale (sum) or the sum of scales (product)', () => {
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        const x = parseDecimal(a);
        const y = parseDecimal(b);
        expect(reference(addDecimal(a, b), formatDecimal({ unscaled: x.unscaled * 10n ** BigInt(y.scale) + y.unscaled * 10n ** BigInt(x.scale), scale: x.scale + y.scale }))).toBe(0);
        expect(parseDecimal(addDecimal(a, b)).scale).toBe(Math.max(x.scale, y.scale));
        expect(multiplyDecimal(a, b)).toBe(formatDecimal({ unscaled: x.unscaled * y.unscaled, scale: x.scale + y.scale }));
      }),
      { numRuns: 2000 },
    );
  });

  it('formats unscaled integers with their scale (Debezium Decimal)', () => {
    expect(decimalFromUnscaled(-5n, 3)).toBe('-0.005');
    expect(decimalFromUnscaled(12345n, 0)).toBe('12345');
    expect(decimalFromUnscaled(7n, -2)).toBe('700');
  });

  it('reads exponents, and refuses one beyond numeric\'s range at once (not after seconds of BigInt arithmetic)', () => {
    expect(formatDecimal(parseDecimal('1.5e3'))).toBe('1500');
    expect(parseDecimal('25e-3')).toEqual({ unscaled: 25n, scale: 3 });
    expect(() => parseDecimal('1e999999999')).toThrow(/within numeric's range, but found the exponent 999999999/);
    expect(() => parseDecimal('-2E-400000')).toThrow(RangeError);
  });
});
