/**
 * Exact decimal arithmetic on canonical decimal strings ('-12.340'), as PostgreSQL's `numeric`
 * does it: a value is an unscaled BigInt and a display scale. Sums keep the largest scale, products
 * add scales, and division picks its scale with PostgreSQL's own rule (`select_div_scale` in
 * src/backend/utils/adt/numeric.c), so `avg()` here prints the same digits as `avg()` there.
 */

export interface Decimal {
  readonly unscaled: bigint;
  readonly scale: number;
}

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
const MAX_EXPONENT = 131_072 + 16_383;

export function parseDecimal(text: string): Decimal {
  const m = DECIMAL_RE.exec(text.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) {
    throw new RangeError(`Expected a decimal number, but found '${text}'`);
  }
  const [, sign, int = '', frac = '', exp] = m;
  // numeric holds at most 131,072 digits before the point and 16,383 after: a larger exponent
  // names no value it can hold, and would cost seconds of BigInt arithmetic (10n ** exponent).
  if (exp !== undefined && Math.abs(Number(exp)) > MAX_EXPONENT) {
    throw new RangeError(`Expected a decimal number within numeric's range, but found the exponent ${exp.slice(0, 20)} in '${text.slice(0, 40)}'`);
  }
  let unscaled = BigInt(`${int}${frac}` || '0');
  let scale = frac.length;
  if (exp !== undefined) {
    scale -= Number(exp);
    if (scale < 0) {
      unscaled *= 10n ** BigInt(-scale);
      scale = 0;
    }
  }
  return { unscaled: sign === '-' ? -unscaled : unscaled, scale };
}

export function formatDecimal({ unscaled, scale }: Decimal): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString();
  if (scale === 0) return `${negative ? '-' : ''}${digits}`;
  const padded = digits.padStart(scale + 1, '0');
  const text = `${padded.slice(0, padded.length - scale)}.${padded.slice(padded.length - scale)}`;
  return negative ? `-${text}` : text;
}

/** Decimal from an unscaled integer and a scale (Debezium's Decimal: base64 two's complement). */
export function decimalFromUnscaled(unscaled: bigint, scale: number): string {
  return formatDecimal(scale >= 0 ? { unscaled, scale } : { unscaled: unscaled * 10n ** BigInt(-scale), scale: 0 });
}

function rescale(d: Decimal, scale: number): bigint {
  return d.unscaled * 10n ** BigInt(scale - d.scale);
}

export function addDecimal(a: string, b: string): string {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const scale = Math.max(x.scale, y.scale);
  return formatDecimal({ unscaled: rescale(x, scale) + rescale(y, scale), scale });
}

export function negateDecimal(a: string): string {
  const x = parseDecimal(a);
  return formatDecimal({ unscaled: -x.unscaled, scale: x.scale });
}

export function subtractDecimal(a: string, b: string): string {
  return addDecimal(a, negateDecimal(b));
}

export function multiplyDecimal(a: string, b: string): string {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  return formatDecimal({ unscaled: x.unscaled * y.unscaled, scale: x.scale + y.scale });
}

/**
 * Compare decimal texts without allocating BigInts: sign, then integer digits by length and
 * value, then fraction digits. Falls back to parsing for exponents or stray signs.
 */
export function compareDecimal(a: string, b: string): number {
  const plain = /^-?\d+(\.\d+)?$/;
  if (!plain.test(a) || !plain.test(b)) return compareParsed(a, b);
  const negA = a.charCodeAt(0) === 45;
  const negB = b.charCodeAt(0) === 45;
  if (negA !== negB) return isZeroText(a) && isZeroText(b) ? 0 : negA ? -1 : 1;
  const c = compareMagnitude(negA ? a.slice(1) : a, negB ? b.slice(1) : b);
  return negA && c !== 0 ? -c : c;
}

function isZeroText(a: string): boolean {
  return /^-?0*(\.0*)?$/.test(a);
}

function compareMagnitude(a: string, b: string): number {
  let dotA = a.indexOf('.');
  let dotB = b.indexOf('.');
  if (dotA < 0) dotA = a.length;
  if (dotB < 0) dotB = b.length;
  let i = 0;
  let j = 0;
  while (i < dotA - 1 && a.charCodeAt(i) === 48) i++; // leading zeros
  while (j < dotB - 1 && b.charCodeAt(j) === 48) j++;
  const lenA = dotA - i;
  const lenB = dotB - j;
  if (lenA !== lenB) return lenA < lenB ? -1 : 1;
  for (; i < dotA; i++, j++) {
    const d = a.charCodeAt(i) - b.charCodeAt(j);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const fracA = a.length - dotA - 1;
  const fracB = b.length - dotB - 1;
  for (let k = 1; k <= Math.max(fracA, fracB); k++) {
    const x = k <= fracA ? a.charCodeAt(dotA + k) : 48;
    const y = k <= fracB ? b.charCodeAt(dotB + k) : 48;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function compareParsed(a: string, b: string): number {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const scale = Math.max(x.scale, y.scale);
  const d = rescale(x, scale) - rescale(y, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export function isZeroDecimal(a: string): boolean {
  return parseDecimal(a).unscaled === 0n;
}

/** Integer division truncating toward zero, as PostgreSQL's int8 `/` does. */
export function divideInteger(a: string, b: string): string {
  return (BigInt(a) / BigInt(b)).toString();
}

/**
 * a ÷ b rounded half away from zero at PostgreSQL's result scale for numeric division.
 * Throws on division by zero (callers decide what that means).
 */
export function divideDecimal(a: string, b: string): string {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (y.unscaled === 0n) throw new RangeError('division by zero');
  const rscale = divisionScale(x, y);
  // (x.u / 10^x.s) / (y.u / 10^y.s) * 10^rscale = x.u * 10^(y.s + rscale) / (y.u * 10^x.s)
  let num = x.unscaled * 10n ** BigInt(y.scale + rscale);
  let den = y.unscaled * 10n ** BigInt(x.scale);
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const negative = num < 0n;
  const abs = negative ? -num : num;
  let q = abs / den;
  if ((abs % den) * 2n >= den) q += 1n;
  return formatDecimal({ unscaled: negative ? -q : q, scale: rscale });
}

/** PostgreSQL's select_div_scale: at least 16 significant digits, and no less than either input's scale. */
function divisionScale(x: Decimal, y: Decimal): number {
  const [w1, f1] = weightAndFirstDigit(x);
  const [w2, f2] = weightAndFirstDigit(y);
  let qweight = w1 - w2;
  if (f1 <= f2) qweight--;
  const rscale = Math.max(16 - qweight * 4, x.scale, y.scale, 0);
  return Math.min(rscale, 1000);
}

/** Weight and first digit of the value in PostgreSQL's base-10000 NumericVar form. */
function weightAndFirstDigit({ unscaled, scale }: Decimal): [number, number] {
  if (unscaled === 0n) return [0, 0];
  const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const intPart = digits.slice(0, digits.length - scale).replace(/^0+/, '');
  if (intPart.length > 0) {
    const groups = Math.ceil(intPart.length / 4);
    return [groups - 1, Number(intPart.slice(0, intPart.length - 4 * (groups - 1)))];
  }
  let frac = digits.slice(digits.length - scale);
  frac = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  for (let i = 0; i < frac.length; i += 4) {
    const group = Number(frac.slice(i, i + 4));
    if (group !== 0) return [-(i / 4) - 1, group];
  }
  return [0, 0];
}
