/**
 * Records: one record, from Kafka or from a Redis stream entry, dispatched by its topic's kind (state.ts) and,
 * on a data topic, by its shape.
 *
 *   Record => topic partition offset key value headers
 *   value  => null                              -- on a data topic, a tombstone after a delete (§1.3)
 *           | Converted(Envelope | FlatRow)     -- data topics: envelope.ts, flattened.ts
 *           | Converted(TxEvent)                -- <prefix>.transaction: events.ts
 *           | Converted(Heartbeat)              -- __debezium-heartbeat.<prefix>: {"ts_ms"} (§5.2)
 *           | Converted(SchemaChange)           -- <prefix>: events.ts
 *
 * A payload is an envelope when its schema is named `….Envelope` (or has op and source) or, without a schema,
 * when it has a `source` object or an `op` with a row image; anything else on a data topic is a flattened row.
 */
import { objectPayload, readConverted } from './converter.ts';
import { decodeEnvelope } from './envelope.ts';
import { decodeSchemaChange, decodeTransactionEvent } from './events.ts';
import { fail, optionalInteger } from './fields.ts';
import type { Where } from './fields.ts';
import { decodeFlattenedRow } from './flattened.ts';
import { isObject, ownField } from './json.ts';
import type { JsonObject } from './json.ts';
import { decodeKey } from './keys.ts';
import type { StructSchema } from './schema.ts';
import type { DecoderState, TopicState } from './state.ts';
import type { DecodedRecord, KafkaRecordInput, StreamRecord } from './types.ts';

export function decodeRecord(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  where: Where,
): DecodedRecord {
  const topic = state.topic(record.topic);
  const value = record.value;
  switch (topic.kind) {
    case 'data':
      return decodeDataRecord(state, record, topic, where);
    case 'heartbeat': {
      if (value === null) return { kind: 'heartbeat' };
      const payload = objectPayload(readConverted(state, value, topic, 'value', where), 'heartbeat', where);
      const tsMs = optionalInteger(payload['ts_ms'], 'payload.ts_ms', where);
      return tsMs === undefined ? { kind: 'heartbeat' } : { kind: 'heartbeat', tsMs };
    }
    case 'schema-change': {
      if (value === null) return { kind: 'schema-change' };
      const payload = objectPayload(
        readConverted(state, value, topic, 'value', where),
        'schema change',
        where,
      );
      return decodeSchemaChange(payload, where);
    }
    case 'transaction': {
      if (value === null) fail(where, 'the record value', 'a transaction BEGIN/END event', null);
      const payload = objectPayload(readConverted(state, value, topic, 'value', where), 'transaction', where);
      return decodeTransactionEvent(payload, where);
    }
  }
}

function decodeDataRecord(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  where: Where,
): DecodedRecord {
  if (record.value === null) return tombstone(state, record, topic, where);
  const converted = readConverted(state, record.value, topic, 'value', where);
  const payload = converted.payload;
  if (payload === null) return tombstone(state, record, topic, where); // {"schema":null,"payload":null}
  if (!isObject(payload))
    fail(where, 'payload', 'an object (a Debezium envelope or a flattened row)', payload);
  return isEnvelope(payload, converted.schema)
    ? decodeEnvelope(state, record, topic, payload, converted.schema, where)
    : decodeFlattenedRow(state, record, topic, payload, converted.schema, where);
}

function tombstone(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  where: Where,
): DecodedRecord {
  const table =
    topic.table ??
    fail(
      where,
      'the topic',
      `named <${state.options.topicPrefix}>.<schema>.<table> for a tombstone`,
      record.topic,
    );
  return { kind: 'tombstone', table, key: decodeKey(state, record, topic, table, where) };
}

/**
 * An envelope has `source`, or `op` with a row image. Anything else on a data topic is a flattened row
 * (ExtractNewRecordState), which passes `source` and `op` only as `__`-prefixed fields.
 */
function isEnvelope(payload: JsonObject, schema: StructSchema | undefined): boolean {
  if (schema !== undefined)
    return (
      schema.name?.endsWith('.Envelope') === true || (schema.byName.has('op') && schema.byName.has('source'))
    );
  const source = ownField(payload, 'source');
  if (source !== undefined && source !== null && typeof source === 'object' && !Array.isArray(source))
    return true;
  return ownField(payload, 'op') !== undefined && ('after' in payload || 'before' in payload);
}
