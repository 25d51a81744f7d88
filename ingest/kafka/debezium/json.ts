/**
 * Exact JSON (§0.1): parsing that keeps every number a double may not hold exactly as its source text, and the
 * readers every other file goes through (numberTextOf, stringOf, isObject, ownField, jsonText).
 *
 *   Json => null | boolean | number                  -- a number only where a double holds it exactly
 *         | "\u0000<number text>"                     -- integers of 16+ digits, any fraction or exponent
 *         | string | "\u0000\u0000<text>"             -- a string (marked twice when it starts with U+0000)
 *         | Json[] | {<key>: Json}
 *
 * Also the scanners converter.ts finds a value's end with without parsing it (endOfJsonValue, isWhitespace).
 */
import { isLosslessNumber, parse as parseLosslessJson } from 'lossless-json';

/**
 * Parsed JSON in which every number a double may not hold exactly — integers of 16 digits or more, and
 * any number with a fraction or an exponent — is kept as its source text, marked by a leading U+0000:
 * `"\u0000123.40"`. Strings that really begin with U+0000 are marked by a second U+0000. Read values
 * through numberTextOf / stringOf, never directly.
 */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

const NUMBER_MARK = '\u0000';

/**
 * Exact JSON parsing, fast: when the text contains no `\u0000` escape, number tokens that need it are
 * rewritten as marked strings and V8's JSON.parse does the rest (about 2.5× faster than lossless-json
 * on a Debezium payload). Otherwise, or on a syntax error (for its message), lossless-json parses it.
 */
export function parseJson(text: string): Json {
  if (!text.includes('\\u0000')) {
    const marked = markInexactNumbers(text);
    if (marked !== undefined) {
      try {
        return JSON.parse(marked) as Json;
      } catch {
        // lossless-json below reports where the text is malformed
      }
    }
  }
  return fromLossless(parseLosslessJson(text, null, { onDuplicateKey: ({ newValue }) => newValue }));
}

/** parseJson, or undefined when the text is not JSON. */
export function tryParseJson(text: string): Json | undefined {
  try {
    return parseJson(text);
  } catch {
    return undefined;
  }
}

export function textOf(bytes: Buffer | string): string {
  return typeof bytes === 'string' ? bytes : bytes.toString('utf8');
}

const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;
const PLUS = 43;
const DOT = 46;
const ZERO = 48;
const NINE = 57;
const LOWER_E = 101;
const UPPER_E = 69;
export const OPEN_BRACE = 123;
export const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
export const COLON = 58;
export const COMMA = 44;
const MAX_EXACT_DIGITS = 15;
const JSON_NUMBER_RE = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The text with each inexact number token replaced by a marked string; undefined when the text has an
 * unterminated string or a malformed number (the slow path then reports it).
 */
function markInexactNumbers(text: string): string | undefined {
  const length = text.length;
  let out = '';
  let copiedUpTo = 0;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i);
      if (i < 0) return undefined;
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const start = i;
      let digits = c === MINUS ? 0 : 1;
      let exact = true;
      for (i++; i < length; i++) {
        const d = text.charCodeAt(i);
        if (d >= ZERO && d <= NINE) digits++;
        else if (d === DOT || d === LOWER_E || d === UPPER_E || d === PLUS || d === MINUS) exact = false;
        else break;
      }
      if (!exact || digits > MAX_EXACT_DIGITS) {
        const token = text.slice(start, i);
        if (!JSON_NUMBER_RE.test(token)) return undefined;
        out += `${text.slice(copiedUpTo, start)}"\\u0000${token}"`;
        copiedUpTo = i;
      }
    } else {
      i++;
    }
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

/** Index just past the closing quote of the string opening at `open`, or -1. */
function endOfString(text: string, open: number): number {
  let close = text.indexOf('"', open + 1);
  while (close !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(close - 1 - backslashes) === BACKSLASH) backslashes++;
    if ((backslashes & 1) === 0) return close + 1;
    close = text.indexOf('"', close + 1);
  }
  return -1;
}

/** Index just past the JSON value starting at `start` (objects and arrays by bracket matching), or -1. */
export function endOfJsonValue(text: string, start: number): number {
  const first = text.charCodeAt(start);
  if (first === QUOTE) return endOfString(text, start);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let i = start;
    while (i < text.length && !isDelimiter(text.charCodeAt(i))) i++;
    return i > start ? i : -1;
  }
  let depth = 0;
  for (let i = start; i < text.length;) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i);
      if (i < 0) return -1;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

export function isWhitespace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function isDelimiter(c: number): boolean {
  return isWhitespace(c) || c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET;
}

/** lossless-json's output in parseJson's representation. */
function fromLossless(value: unknown): Json {
  if (typeof value === 'string') return value.charCodeAt(0) === 0 ? NUMBER_MARK + value : value;
  if (value === null || typeof value === 'boolean') return value;
  if (isLosslessNumber(value)) return numberToken(value.value);
  if (Array.isArray(value)) return value.map(fromLossless);
  const object: JsonObject = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    Object.defineProperty(object, key, {
      value: fromLossless(entry),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return object;
}

function numberToken(text: string): number | string {
  const digits = text.charCodeAt(0) === MINUS ? text.length - 1 : text.length;
  return digits <= MAX_EXACT_DIGITS && /^-?\d+$/.test(text) ? Number(text) : NUMBER_MARK + text;
}

/** The source text of a number parseJson kept as text; undefined for anything else. */
export function numberTextOf(raw: Json | undefined): string | undefined {
  return typeof raw === 'string' && raw.charCodeAt(0) === 0 && raw.charCodeAt(1) !== 0
    ? raw.slice(1)
    : undefined;
}

/** The value of a JSON string; undefined for anything else (numbers kept as text included). */
export function stringOf(raw: Json | undefined): string | undefined {
  if (typeof raw !== 'string') return undefined;
  if (raw.charCodeAt(0) !== 0) return raw;
  return raw.charCodeAt(1) === 0 ? raw.slice(1) : undefined;
}

export function isObject(raw: Json | undefined): raw is JsonObject {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw);
}

/** obj[name] when it is obj's own property (a column may be called `constructor` or `__proto__`). */
export function ownField(obj: JsonObject, name: string): Json | undefined {
  const value = obj[name];
  return value === undefined || (typeof value === 'object' && value !== null) || typeof value === 'function'
    ? Object.hasOwn(obj, name)
      ? value
      : undefined
    : value;
}

/** Compact JSON text with exact numbers. */
export function jsonText(raw: Json): string {
  if (typeof raw === 'string') {
    const number = numberTextOf(raw);
    return number ?? JSON.stringify(stringOf(raw));
  }
  if (Array.isArray(raw)) return `[${raw.map(jsonText).join(',')}]`;
  if (isObject(raw)) {
    return `{${Object.keys(raw)
      .map((key) => `${JSON.stringify(key)}:${jsonText(raw[key] as Json)}`)
      .join(',')}}`;
  }
  return JSON.stringify(raw);
}
