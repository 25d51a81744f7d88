/**
 * Keys and primary-key changes (§1.1, §4.3): the record key as a Row, and the other half of a key change, from
 * the header Debezium puts on the d and the c it splits an update of the key into.
 *
 *   key     => null | Converted(KeyStruct)                 -- {"id": 7}; null: no key, or a truncate
 *   headers => "__debezium.newkey": Converted(KeyStruct)  -- on the d of the old key
 *            | "__debezium.oldkey": Converted(KeyStruct)  -- on the c of the new key
 *
 * A key column never holds the unavailable-value placeholder.
 */
import { UNAVAILABLE } from '../../change.ts';
import type { Op, Row } from '../../change.ts';
import { readConverted } from './converter.ts';
import type { Converted } from './converter.ts';
import { fail } from './fields.ts';
import type { Where } from './fields.ts';
import { isObject } from './json.ts';
import { decodeStructRow } from './schema.ts';
import type { StructSchema } from './schema.ts';
import { decodeSchemalessRow } from './schemaless.ts';
import type { DecoderState, TopicState } from './state.ts';
import type { KafkaRecordInput, KeyChange, StreamRecord } from './types.ts';

export function decodeKey(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  table: string,
  where: Where,
): Row | null {
  if (record.key === null) return null;
  const converted = readConverted(state, record.key, topic, 'key', where);
  return keyRow(state, converted, undefined, table, 'key', where);
}

function keyRow(
  state: DecoderState,
  converted: Converted,
  fallbackSchema: StructSchema | undefined,
  table: string,
  path: string,
  where: Where,
): Row | null {
  const payload = converted.payload;
  if (payload === null) return null;
  if (!isObject(payload)) fail(where, path, 'an object of key columns', payload);
  const schema = converted.schema ?? (converted.hadSchema ? undefined : fallbackSchema);
  const row =
    schema === undefined
      ? decodeSchemalessRow(state, payload, state.declared(table), path, where)
      : decodeStructRow(schema.fields, payload, path, where);
  for (const column in row) {
    if (row[column] === UNAVAILABLE) fail(where, `${path}.${column}`, 'a key value', state.placeholder.text);
  }
  return row as Row;
}

const NEW_KEY_HEADER = '__debezium.newkey';
const OLD_KEY_HEADER = '__debezium.oldkey';

export function readKeyChange(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  table: string,
  op: Op,
  key: Row,
  where: Where,
): KeyChange | undefined {
  if (op !== 'd' && op !== 'c') return undefined;
  const header = op === 'd' ? NEW_KEY_HEADER : OLD_KEY_HEADER;
  const raw = record.headers?.[header];
  if (raw === undefined) return undefined;
  // SimpleHeaderConverter renders the key struct as {"id":8}; a JSON header converter adds a schema.
  const path = `headers['${header}']`;
  const converted = readConverted(state, raw, undefined, `header ${header}`, where);
  const other = keyRow(state, converted, topic.keySchema, table, path, where);
  if (other === null) return fail(where, path, 'a key', null);
  return op === 'd' ? { oldKey: key, newKey: other } : { oldKey: other, newKey: key };
}
