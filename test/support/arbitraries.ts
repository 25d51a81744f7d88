/**
 * fast-check arbitraries shared by the property tests.
 */
import fc from 'fast-check';

/** Decimal text ('-12.340') with up to `digits` digits and `maxScale` fraction digits, optionally with leading zeros. */
export function decimalText({ digits = 30, maxScale = 12, leadingZeros = 0 }: { digits?: number; maxScale?: number; leadingZeros?: number } = {}) {
  const bound = 10n ** BigInt(digits);
  return fc
    .tuple(fc.bigInt({ min: -bound, max: bound }), fc.integer({ min: 0, max: maxScale }), fc.nat({ max: leadingZeros }))
    .map(([u, s, zeros]) => {
      const text = (u < 0n ? -u : u).toString().padStart(s + 1, '0');
      const withPoint = s === 0 ? text : `${text.slice(0, -s)}.${text.slice(-s)}`;
      return `${u < 0n ? '-' : ''}${'0'.repeat(zeros)}${withPoint}`;
    });
}
