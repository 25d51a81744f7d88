/**
 * Envelopes (§1.2): Debezium's change event → DecodedChange, or DecodedMessage for op m (events.ts).
 *
 *   Envelope => {"before": Row|null, "after": Row|null, "source": Source, "op": "c"|"u"|"d"|"r"|"t"|"m",
 *                "ts_ms", "ts_us"?, "ts_ns"?,
 *                "transaction"?: {"id", "total_order", "data_collection_order"}|null,
 *                "message"?: {"prefix", "content": base64}}                          -- op m only
 *
 * Rows decode by the envelope schema's before/after struct (schema.ts), else by the declared column types
 * (schemaless.ts); `source` by source.ts; the key and a key change by keys.ts.
 */
import type { Change, ChangeRow, Op } from '../../change.ts';
import { decodeMessage } from './events.ts';
import { fail, requireInteger, requireString } from './fields.ts';
import type { Where } from './fields.ts';
import { isObject } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import { decodeKey, readKeyChange } from './keys.ts';
import { decodeStructRow, envelopeRowSchema } from './schema.ts';
import type { StructSchema } from './schema.ts';
import { decodeSchemalessRow } from './schemaless.ts';
import { decodeSource, kafkaCoordinates, readConnector, tableFromSource } from './source.ts';
import type { DecoderState, TopicState } from './state.ts';
import type {
  DecodedChange,
  DecodedRecord,
  KafkaRecordInput,
  Mutable,
  StreamRecord,
  TransactionOrder,
} from './types.ts';

const OPS = 'c|u|d|r|t|m';

export function decodeEnvelope(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  payload: JsonObject,
  schema: StructSchema | undefined,
  where: Where,
): DecodedRecord {
  const op = readOp(payload['op'], where);
  const sourceJson = payload['source'];
  if (!isObject(sourceJson)) fail(where, 'payload.source', 'an object', sourceJson);
  if (op === 'm') return decodeMessage(payload, sourceJson, where);

  const connector = readConnector(sourceJson['connector'], 'payload.source.connector', where);
  const source = decodeSource(connector, sourceJson, 'payload.source.', kafkaCoordinates(record), where);
  const table =
    tableFromSource(connector, sourceJson) ??
    topic.table ??
    fail(where, 'payload.source.table', 'a string', sourceJson['table']);

  let before: ChangeRow | null = null;
  let after: ChangeRow | null = null;
  if (op !== 't') {
    before = decodeRowImage(state, payload, 'before', schema, table, where);
    after = decodeRowImage(state, payload, 'after', schema, table, where);
    if (after === null && op !== 'd')
      fail(where, 'payload.after', `an object for op '${op}'`, payload['after']);
  }
  const key = op === 't' ? null : decodeKey(state, record, topic, table, where);
  const change: Change = { table, op, before, after, key, source };

  const transaction = readTransactionOrder(payload['transaction'], where);
  const keyChange = key === null ? undefined : readKeyChange(state, record, topic, table, op, key, where);
  const rowSchema = schema === undefined ? undefined : envelopeRowSchema(schema);
  if (transaction === undefined && keyChange === undefined && rowSchema === undefined)
    return { kind: 'change', change };
  const decoded: Mutable<DecodedChange> = { kind: 'change', change };
  if (transaction !== undefined) decoded.transaction = transaction;
  if (keyChange !== undefined) decoded.keyChange = keyChange;
  if (rowSchema !== undefined) decoded.rowSchema = rowSchema;
  return decoded;
}

function readOp(raw: Json | undefined, where: Where): Op | 'm' {
  switch (raw) {
    case 'c':
    case 'u':
    case 'd':
    case 'r':
    case 't':
    case 'm':
      return raw;
    default:
      return fail(where, 'payload.op', `one of ${OPS}`, raw);
  }
}

function decodeRowImage(
  state: DecoderState,
  payload: JsonObject,
  field: 'before' | 'after',
  schema: StructSchema | undefined,
  table: string,
  where: Where,
): ChangeRow | null {
  const raw = payload[field];
  if (raw === undefined || raw === null) return null;
  const path = `payload.${field}`;
  if (!isObject(raw)) fail(where, path, 'an object or null', raw);
  const struct = schema?.byName.get(field)?.struct;
  if (struct !== undefined) return decodeStructRow(struct.fields, raw, path, where);
  return decodeSchemalessRow(state, raw, state.declared(table), path, where);
}

function readTransactionOrder(raw: Json | undefined, where: Where): TransactionOrder | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) fail(where, 'payload.transaction', 'an object or null', raw);
  return {
    id: requireString(raw, 'id', 'payload.transaction.', where),
    totalOrder: requireInteger(raw['total_order'], 'payload.transaction.total_order', where),
    dataCollectionOrder: requireInteger(
      raw['data_collection_order'],
      'payload.transaction.data_collection_order',
      where,
    ),
  };
}
