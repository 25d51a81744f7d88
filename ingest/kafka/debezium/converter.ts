/**
 * Envelope format, layer 1: JsonConverter, with or without schemas (§1.1). A key's, value's or header's bytes →
 * { schema?: StructSchema, payload: Json }.
 *
 *   Converted(T) => {"schema": ConnectSchema | null, "payload": T}    -- schemas.enable=true
 *                 | T                                               -- schemas.enable=false
 *
 * The schema text is compared with the last one seen on the topic (as bytes, not parsed), or split out by
 * bracket matching and compiled once per distinct text (state.ts, schema.ts); only the payload is parsed.
 * Another envelope format (CloudEvents, Avro) would be a file beside this one.
 */
import { fail, parseJsonOrFail } from './fields.ts';
import type { Where } from './fields.ts';
import {
  CLOSE_BRACE,
  COLON,
  COMMA,
  endOfJsonValue,
  isObject,
  isWhitespace,
  OPEN_BRACE,
  textOf,
  tryParseJson,
} from './json.ts';
import type { Json, JsonObject } from './json.ts';
import { compileTopLevelSchema } from './schema.ts';
import type { StructSchema } from './schema.ts';
import type { DecoderState, TopicSchemaSlot } from './state.ts';

export interface Converted {
  readonly schema: StructSchema | undefined;
  /** True when the JSON had a `schema` (also a null one): then the payload is never decoded with another schema. */
  readonly hadSchema: boolean;
  readonly payload: Json;
}

/**
 * Split `{"schema": S, "payload": P}` without parsing S again: S is compared with the last schema seen on
 * this topic (one memcmp on the record's bytes), else found by bracket matching and compiled once per
 * distinct text. Only P is decoded and parsed. Anything else (a schemaless payload, an unusual layout) is
 * parsed whole.
 */
export function readConverted(
  state: DecoderState,
  input: Buffer | string,
  slot: TopicSchemaSlot | undefined,
  what: 'key' | 'value' | `header ${string}`,
  where: Where,
): Converted {
  const cached = what === 'key' ? slot?.keySchema : what === 'value' ? slot?.valueSchema : undefined;
  const hit = cached === undefined ? undefined : payloadAfterCachedSchema(input, cached);
  const hitPayload = hit === undefined ? undefined : tryParseJson(hit);
  if (hitPayload !== undefined) return { schema: cached, hadSchema: true, payload: hitPayload };
  const text = textOf(input);
  const split = splitSchemaAndPayload(state, text, what, where);
  const splitPayload =
    split === undefined ? undefined : tryParseJson(text.slice(split.payloadStart, split.payloadEnd));
  if (split !== undefined && splitPayload !== undefined) {
    if (split.schema !== undefined && slot !== undefined) {
      if (what === 'key') slot.keySchema = split.schema;
      else if (what === 'value') slot.valueSchema = split.schema;
    }
    return { schema: split.schema, hadSchema: true, payload: splitPayload };
  }
  // Not the JsonConverter layout after all (or malformed): parse it whole, which also reports errors.
  const json = parseJsonOrFail(text, where, `the record ${what}`);
  if (isObject(json) && 'schema' in json && 'payload' in json && Object.keys(json).length === 2) {
    const schemaJson = json['schema'];
    const schema =
      schemaJson === null || schemaJson === undefined
        ? undefined
        : compileTopLevelSchema(schemaJson, undefined, state.placeholder, where, what);
    return { schema, hadSchema: true, payload: json['payload'] ?? null };
  }
  return { schema: undefined, hadSchema: false, payload: json };
}

/** The payload text when `input` is `{"schema": <cached schema>, "payload": …}`; undefined otherwise. */
function payloadAfterCachedSchema(input: Buffer | string, cached: StructSchema): string | undefined {
  const schemaStart = afterSchemaKey(input);
  if (schemaStart < 0 || cached.text === undefined) return undefined;
  let schemaEnd: number;
  if (typeof input === 'string') {
    if (!input.startsWith(cached.text, schemaStart)) return undefined;
    schemaEnd = schemaStart + cached.text.length;
  } else {
    const bytes = (cached.bytes ??= Buffer.from(cached.text, 'utf8'));
    schemaEnd = schemaStart + bytes.length;
    if (schemaEnd > input.length || input.compare(bytes, 0, bytes.length, schemaStart, schemaEnd) !== 0)
      return undefined;
  }
  // A complete JSON value ends where it ends: the cached text is the whole schema.
  const payloadStart = afterPayloadKey(input, schemaEnd);
  const payloadEnd = payloadStart < 0 ? -1 : closingBraceOfTopLevel(input, payloadStart);
  if (payloadEnd < 0) return undefined;
  return typeof input === 'string'
    ? input.slice(payloadStart, payloadEnd)
    : input.toString('utf8', payloadStart, payloadEnd);
}

interface SchemaPayloadSplit {
  readonly schema: StructSchema | undefined;
  readonly payloadStart: number;
  readonly payloadEnd: number;
}

function splitSchemaAndPayload(
  state: DecoderState,
  text: string,
  what: string,
  where: Where,
): SchemaPayloadSplit | undefined {
  const schemaStart = afterSchemaKey(text);
  if (schemaStart < 0) return undefined;
  const schemaEnd = endOfJsonValue(text, schemaStart);
  if (schemaEnd < 0) return undefined;
  const payloadStart = afterPayloadKey(text, schemaEnd);
  const payloadEnd = payloadStart < 0 ? -1 : closingBraceOfTopLevel(text, payloadStart);
  if (payloadEnd < 0) return undefined;
  const schemaText = text.slice(schemaStart, schemaEnd);
  const schema = schemaText === 'null' ? undefined : state.schema(schemaText, where, what);
  return { schema, payloadStart, payloadEnd };
}

type Text = Buffer | string;

function codeAt(text: Text, i: number): number {
  return typeof text === 'string' ? text.charCodeAt(i) : (text[i] ?? -1);
}

function literalAt(text: Text, literal: string, i: number): boolean {
  if (typeof text === 'string') return text.startsWith(literal, i);
  for (let k = 0; k < literal.length; k++) if (text[i + k] !== literal.charCodeAt(k)) return false;
  return true;
}

function skipWhitespace(text: Text, from: number): number {
  let i = from;
  while (isWhitespace(codeAt(text, i))) i++;
  return i;
}

/** Index of the schema value in `{ "schema" : …`, or -1. */
function afterSchemaKey(text: Text): number {
  let i = skipWhitespace(text, 0);
  if (codeAt(text, i) !== OPEN_BRACE) return -1;
  i = skipWhitespace(text, i + 1);
  if (!literalAt(text, '"schema"', i)) return -1;
  i = skipWhitespace(text, i + 8);
  return codeAt(text, i) === COLON ? skipWhitespace(text, i + 1) : -1;
}

/** Index of the payload value in `, "payload" : …` following `from`, or -1. */
function afterPayloadKey(text: Text, from: number): number {
  let i = skipWhitespace(text, from);
  if (codeAt(text, i) !== COMMA) return -1;
  i = skipWhitespace(text, i + 1);
  if (!literalAt(text, '"payload"', i)) return -1;
  i = skipWhitespace(text, i + 9);
  return codeAt(text, i) === COLON ? skipWhitespace(text, i + 1) : -1;
}

/** Index of the top-level object's closing brace (the text's last non-blank character), or -1. */
function closingBraceOfTopLevel(text: Text, after: number): number {
  let end = text.length - 1;
  while (end > after && isWhitespace(codeAt(text, end))) end--;
  return end > after && codeAt(text, end) === CLOSE_BRACE ? end : -1;
}

export function objectPayload(converted: Converted, what: string, where: Where): JsonObject {
  const payload = converted.payload;
  return isObject(payload) ? payload : fail(where, 'payload', `a ${what} event object`, payload);
}
