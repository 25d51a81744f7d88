/**
 * Redis Stream entries (Debezium Server Redis sink, §7.1): an entry of the stream named after the topic, read
 * as the record it stands for (StreamRecord) and decoded like a Kafka record (record.ts).
 *
 *   entry          => <key>: <value>                               -- compact: one field, named by the key
 *                   | key: <key>, value: <value>, <HEADER>: <text>… -- extended: header names upper-cased
 *   <key>, <value> => JSON text | <redisNullKey / redisNullValue>  -- null (both default `default`)
 */
import { fail } from './fields.ts';
import type { Where } from './fields.ts';
import { decodeRecord } from './record.ts';
import type { DecoderState } from './state.ts';
import type { DecodedRecord, RedisStreamEntry, StreamRecord } from './types.ts';

export function decodeStreamEntry(state: DecoderState, entry: RedisStreamEntry): DecodedRecord {
  const where: Where = { topic: entry.stream, streamEntryId: entry.id };
  const pairs = streamFieldPairs(entry.fields, where);
  const nullKey = state.options.redisNullKey ?? 'default';
  const nullValue = state.options.redisNullValue ?? 'default';
  let key: string;
  let value: string;
  const headers: Record<string, string> = {};
  const [first, second] = pairs;
  if (first !== undefined && second !== undefined && first[0] === 'key' && second[0] === 'value') {
    // extended: key, value, then one field per record header, its name upper-cased.
    key = first[1];
    value = second[1];
    for (const [name, text] of pairs.slice(2)) headers[name.toLowerCase()] = text;
  } else if (first !== undefined && second === undefined) {
    // compact: a single field whose name is the key and whose value is the value.
    [key, value] = first;
  } else {
    return fail(
      where,
      'the stream entry',
      'in the Redis sink compact format (one field) or extended format (key, value, headers)',
      pairs.map(([name]) => name).join(','),
    );
  }
  const record: StreamRecord = {
    topic: entry.stream,
    key: key === nullKey ? null : key,
    value: value === nullValue ? null : value,
    headers,
  };
  return decodeRecord(state, record, where);
}

function streamFieldPairs(fields: RedisStreamEntry['fields'], where: Where): (readonly [string, string])[] {
  if (!Array.isArray(fields)) return Object.entries(fields as Readonly<Record<string, string>>);
  const list = fields as readonly (string | readonly [string, string])[];
  if (list.every((field): field is string => typeof field === 'string')) {
    if (list.length % 2 !== 0)
      fail(where, 'the stream entry fields', 'name/value pairs', `${list.length} strings`);
    const pairs: [string, string][] = [];
    for (let i = 0; i < list.length; i += 2) pairs.push([list[i] as string, list[i + 1] as string]);
    return pairs;
  }
  return list.filter((field): field is readonly [string, string] => typeof field !== 'string');
}
