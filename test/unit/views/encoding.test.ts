/**
 * Order keys carry SQL order into Redis's byte order: for any two values, comparing their order
 * keys as bytes gives the same answer as comparing the values.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalText } from '../../support/arbitraries.ts';
import { compareDecimal } from '../../../core/decimal.ts';
import { parseDecimal } from '../../../core/decimal.ts';
import { candidateMember, candidateValue, compareBytes, encodeRowKey, orderKey, sortComponent } from '../../../core/encoding.ts';

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

/**
 * Order keys are stored (row keys, set members): a faster encoder must write the same bytes. These
 * are the encoders as first written, with regular expressions; the ones in core/encoding.ts scan
 * the text by hand.
 */
describe('order keys are the bytes the first encoders wrote', () => {
  function numberOrderKeyAsWritten(text: string): string {
    let negative: boolean;
    let digits: string;
    let scale: number;
    const m = /^(-?)0*(\d*?)(?:\.(\d*))?$/.exec(text);
    if (m) {
      negative = m[1] === '-';
      const frac = m[3] ?? '';
      digits = `${m[2]}${frac}`.replace(/^0+/, '');
      scale = frac.length;
      if (digits === '') return 'b';
    } else {
      const parsed = parseDecimal(text);
      if (parsed.unscaled === 0n) return 'b';
      negative = parsed.unscaled < 0n;
      digits = (negative ? -parsed.unscaled : parsed.unscaled).toString();
      scale = parsed.scale;
    }
    const exponent = digits.length - scale;
    const mantissa = digits.replace(/0+$/, '');
    if (!negative) return `c${String(exponent + 5000).padStart(4, '0')}${mantissa}`;
    let complement = '';
    for (let i = 0; i < mantissa.length; i++) complement += String(9 - (mantissa.charCodeAt(i) - 48));
    return `a${String(9999 - (exponent + 5000)).padStart(4, '0')}${complement}~`;
  }
  function padFractionAsWritten(text: string): string {
    const m = /^([^.Z]*)(?:\.(\d+))?(Z?)$/.exec(text);
    if (!m) return text;
    return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}`;
  }
  const outcome = (f: () => string): string => {
    try {
      return f();
    } catch (error) {
      return `threw ${String(error)}`;
    }
  };
  const textOf = (chars: string): fc.Arbitrary<string> =>
    fc.array(fc.constantFrom(...chars), { maxLength: 14 }).map((c) => c.join(''));

  // Exponents stay small: a large one is seconds of BigInt arithmetic (or a RangeError) for both.
  const withExponent = fc
    .tuple(textOf('-+0123456789.'), fc.constantFrom('e', 'E', 'e+', 'e-', 'E-', ''), fc.integer({ min: 0, max: 40 }), fc.boolean())
    .map(([mantissa, e, exponent, digits]) => `${mantissa}${e}${digits ? exponent : ''}`);

  it('numerics: plain decimals, and any text of digits, signs, dots and exponents', () => {
    fc.assert(
      fc.property(fc.oneof(decimal, textOf('-+0123456789.00'), withExponent), (text) => {
        expect(outcome(() => orderKey('numeric', text))).toBe(outcome(() => numberOrderKeyAsWritten(text)));
      }),
      { numRuns: 5000 },
    );
  });

  it('timestamps: canonical ones, and any text of digits, dots, colons and Z', () => {
    fc.assert(
      fc.property(fc.oneof(timestamp, textOf('0123456789.Z:-T ')), (text) => {
        expect(orderKey('timestamptz', text)).toBe(padFractionAsWritten(text));
      }),
      { numRuns: 5000 },
    );
  });

  it('descending terms: the order key\'s UTF-8 bytes as complemented hex', () => {
    const asWritten = (key: string): string =>
      `\x02${[...Buffer.from(key, 'utf8')].map((b) => (255 - b).toString(16).padStart(2, '0')).join('')}~`;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 12 }), decimal, (text, number) => {
        expect(sortComponent('text', text, true)).toBe(asWritten(text));
        expect(sortComponent('numeric', number, true)).toBe(asWritten(orderKey('numeric', number)));
      }),
      { numRuns: 2000 },
    );
  });
});
