/**
 * Flattened rows: ExtractNewRecordState ("unwrap", §6.1) → DecodedChange.
 *
 *   FlatRow => {<column>: value…, "__deleted"?: "true"|"false", "__op"?, "__table"?, "__lsn"?,
 *               "__source_ts_ms"?, …}                   -- `__<field>` or `__source_<field>`, per add.fields
 *
 * The metadata fields are taken out of the row and laid out as a `source` block (source.ts). The connector is
 * `__connector`, else DecoderOptions.connector, else told by `__lsn` / `__file` / `__commit_lsn`; the table is
 * `__schema`/`__db` + `__table`, else the topic's.
 */
import type { Change, ConnectorKind, Op } from '../../change.ts';
import { fail } from './fields.ts';
import type { Where } from './fields.ts';
import { ownField, stringOf } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import { decodeKey } from './keys.ts';
import { decodeStructRow, rowSchemaOf } from './schema.ts';
import type { FieldSpec, StructSchema } from './schema.ts';
import { decodeSchemalessRow } from './schemaless.ts';
import { decodeSource, kafkaCoordinates, readConnector, tableFromSource } from './source.ts';
import type { DecoderState, TopicState } from './state.ts';
import type { DecodedRecord, KafkaRecordInput, StreamRecord } from './types.ts';

/**
 * Field names ExtractNewRecordState can add (`add.fields`), written `__<field>` or `__source_<field>`
 * (and `__transaction_<field>`). These are removed from the row; any other `__` column stays.
 */
const FLATTENED_METADATA = new Set([
  'deleted', 'op', 'table', 'schema', 'db', 'lsn', 'txId', 'xmin', 'sequence', 'ts_ms', 'ts_us', 'ts_ns',
  'snapshot', 'connector', 'name', 'version', 'file', 'pos', 'row', 'gtid', 'server_id', 'thread', 'query',
  'change_lsn', 'commit_lsn', 'event_serial_no', 'origin', 'origin_lsn', 'transaction_id',
  'transaction_total_order', 'transaction_data_collection_order',
]); // prettier-ignore

function isFlattenedMetadata(column: string): boolean {
  if (column.charCodeAt(0) !== 95 || column.charCodeAt(1) !== 95) return false; // '__'
  const name = column.slice(2);
  return (
    FLATTENED_METADATA.has(name) || (name.startsWith('source_') && FLATTENED_METADATA.has(name.slice(7)))
  );
}

/** `__<name>`, else `__source_<name>`: add.fields=table gives `__table`, add.fields=source.table `__source_table`. */
function flattenedField(row: JsonObject, name: string): Json | undefined {
  const plain = ownField(row, `__${name}`);
  return plain !== undefined && plain !== null ? plain : ownField(row, `__source_${name}`);
}

/** Source fields copied from a flattened row; `ts_ms` only as `__source_ts_ms` (plain `__ts_ms` is the envelope's). */
const FLATTENED_SOURCE_FIELDS = [
  'name', 'db', 'schema', 'table', 'snapshot', 'txId', 'lsn', 'sequence', 'file', 'pos', 'row', 'gtid',
  'commit_lsn', 'change_lsn', 'event_serial_no',
] as const; // prettier-ignore

export function decodeFlattenedRow(
  state: DecoderState,
  record: KafkaRecordInput | StreamRecord,
  topic: TopicState,
  payload: JsonObject,
  schema: StructSchema | undefined,
  where: Where,
): DecodedRecord {
  const deleted = flattenedField(payload, 'deleted');
  const isDeleted = deleted === 'true' || deleted === true;
  const opField = flattenedField(payload, 'op');
  // Without add.fields=op, a row that is not deleted is an upsert of unknown kind: 'u'.
  const op: Op = isDeleted
    ? 'd'
    : opField === undefined || opField === null
      ? 'u'
      : flattenedOp(opField, where);
  const connector = flattenedConnector(state, payload, where);

  const sourceJson: JsonObject = {};
  for (const field of FLATTENED_SOURCE_FIELDS) {
    const value = flattenedField(payload, field);
    if (value !== undefined) sourceJson[field] = value;
  }
  const tsUs = ownField(payload, '__source_ts_us');
  if (tsUs !== undefined) sourceJson['ts_us'] = tsUs;
  const tsMs = ownField(payload, '__source_ts_ms');
  if (tsMs !== undefined) sourceJson['ts_ms'] = tsMs;
  const table = flattenedTable(connector, sourceJson, topic, where);
  // Fill what add.fields left out from the resolved table, so SourceInfo looks like an envelope's.
  const dot = table.lastIndexOf('.');
  const byDatabase = connector === 'mysql' || connector === 'mariadb';
  sourceJson['table'] ??= table.slice(dot + 1);
  if (!byDatabase) sourceJson['schema'] ??= table.slice(0, dot);
  sourceJson['db'] ??= byDatabase
    ? table.slice(0, dot)
    : connector === 'sqlserver'
      ? (topic.database ?? '')
      : '';
  sourceJson['name'] ??= state.options.topicPrefix;
  sourceJson['snapshot'] ??= op === 'r' ? 'true' : 'false';
  const source = decodeSource(connector, sourceJson, 'payload.__', kafkaCoordinates(record), where);
  const row =
    schema === undefined
      ? decodeSchemalessRow(state, payload, state.declared(table), 'payload', where, isFlattenedMetadata)
      : decodeStructRow(flattenedFields(schema), payload, 'payload', where);
  const change: Change = {
    table,
    op,
    before: op === 'd' ? row : null,
    after: op === 'd' || op === 't' ? null : row,
    key: op === 't' ? null : decodeKey(state, record, topic, table, where),
    source,
  };
  if (schema === undefined) return { kind: 'change', change };
  return {
    kind: 'change',
    change,
    rowSchema: (schema.flattenedRow ??= rowSchemaOf(flattenedFields(schema))),
  };
}

function flattenedOp(raw: Json, where: Where): Op {
  switch (raw) {
    case 'c':
    case 'u':
    case 'd':
    case 'r':
    case 't':
      return raw;
    default:
      return fail(where, 'payload.__op', 'one of c|u|d|r|t', raw);
  }
}

function flattenedConnector(state: DecoderState, payload: JsonObject, where: Where): ConnectorKind {
  const named = flattenedField(payload, 'connector');
  if (named !== undefined && named !== null) return readConnector(named, 'payload.__connector', where);
  if (state.options.connector !== undefined) return state.options.connector;
  if (flattenedField(payload, 'lsn') !== undefined) return 'postgresql';
  if (flattenedField(payload, 'file') !== undefined || flattenedField(payload, 'pos') !== undefined)
    return 'mysql';
  if (
    flattenedField(payload, 'commit_lsn') !== undefined ||
    flattenedField(payload, 'change_lsn') !== undefined
  ) {
    return 'sqlserver';
  }
  return fail(
    where,
    'payload.__connector',
    'one of postgresql|mysql|mariadb|sqlserver in this flattened row (ExtractNewRecordState add.fields=source.connector)',
    undefined,
    ', nor __lsn, __file or __commit_lsn to tell it by; or set DecoderOptions.connector',
  );
}

/** `__schema`/`__db` + `__table` when both are there; else the topic's qualifier with `__table`; else the topic. */
function flattenedTable(
  connector: ConnectorKind,
  source: JsonObject,
  topic: TopicState,
  where: Where,
): string {
  const fromFields = tableFromSource(connector, source);
  if (fromFields !== undefined) return fromFields;
  const table = stringOf(source['table']);
  if (topic.table !== undefined) {
    return table === undefined
      ? topic.table
      : `${topic.table.slice(0, topic.table.lastIndexOf('.'))}.${table}`;
  }
  return fail(
    where,
    'payload.__table',
    'a table name (or a topic named <prefix>.<schema>.<table>)',
    source['table'],
  );
}

function flattenedFields(schema: StructSchema): readonly FieldSpec[] {
  return (schema.flattened ??= schema.fields.filter((field) => !isFlattenedMetadata(field.name)));
}
