/**
 * Field access and errors: a required or optional string / integer / int64 field of a JSON object, JSON parsed or
 * failed, and the one way decoding fails, a DecodeError that names the record:
 *
 *   decode(debezium): expected <path> to be <expected>, but found <found><detail> (<where>)
 *   <where> => topic <topic>, partition <partition>, offset <offset>      -- a Kafka record
 *            | stream <stream>, entry <entry id>                           -- a Redis stream entry
 */
import { DecodeError } from '../../errors.ts';
import { jsonText, numberTextOf, ownField, parseJson, stringOf, textOf } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import { int64Text, safeIntegerOf } from './value-decoders.ts';

/** Where a record came from, for error messages: a Kafka record, or a Redis Stream entry. */
export interface Where {
  readonly topic: string;
  readonly partition?: number;
  readonly offset?: string;
  readonly streamEntryId?: string;
}

export function parseJsonOrFail(
  text: string,
  where: Where,
  what: string,
  whole: Buffer | string = text,
): Json {
  try {
    return parseJson(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return fail(where, what, 'JSON', textOf(whole), ` (${reason})`);
  }
}

export function requireString(obj: JsonObject, key: string, pathPrefix: string, where: Where): string {
  const raw = ownField(obj, key);
  return stringOf(raw) ?? fail(where, `${pathPrefix}${key}`, 'a string', raw);
}

export function optionalString(
  obj: JsonObject,
  key: string,
  pathPrefix: string,
  where: Where,
): string | undefined {
  const raw = ownField(obj, key);
  if (raw === undefined || raw === null) return undefined;
  return stringOf(raw) ?? fail(where, `${pathPrefix}${key}`, 'a string or null', raw);
}

export function requireInteger(raw: Json | undefined, path: string, where: Where): number {
  return (
    (raw === undefined || raw === null ? undefined : safeIntegerOf(raw)) ??
    fail(where, path, 'an integer', raw)
  );
}

export function optionalInteger(raw: Json | undefined, path: string, where: Where): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  return safeIntegerOf(raw) ?? fail(where, path, 'an integer or null', raw);
}

export function optionalInt64Text(raw: Json | undefined, path: string, where: Where): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  return int64Text(raw) ?? fail(where, path, 'an int64 or null', raw);
}

export function locationOf(where: Where): string {
  return where.streamEntryId === undefined
    ? `topic ${where.topic}, partition ${where.partition}, offset ${where.offset}`
    : `stream ${where.topic}, entry ${where.streamEntryId}`;
}

const MAX_FOUND_LENGTH = 120;

/** How a found value reads in a message: strings quoted, long text cut. */
function describeFound(raw: Json | undefined): string {
  if (raw === undefined) return 'nothing';
  const text = numberTextOf(raw) ?? (typeof raw === 'string' ? `'${stringOf(raw)}'` : jsonText(raw));
  return text.length > MAX_FOUND_LENGTH ? `${text.slice(0, MAX_FOUND_LENGTH)}…` : text;
}

/** decode(debezium): expected <path> to be <expected>, but found <found><detail> (<where>). */
export function fail(
  where: Where,
  path: string,
  expected: string,
  found: Json | undefined,
  detail = '',
): never {
  throw new DecodeError(
    `decode(debezium): expected ${path} to be ${expected}, but found ${describeFound(found)}${detail} (${locationOf(where)})`,
  );
}
