/**
 * `source` (§2): SourceInfo from an envelope's `source` block, or from a flattened row's `__` fields laid out as
 * one; the connector and Change.table it names; and the Kafka coordinates of the record.
 *
 *   Source => {"version", "connector", "name", "ts_ms", "ts_us"?, "ts_ns"?, "db",
 *              "snapshot": "true"|"first"|"first_in_data_collection"|"last_in_data_collection"
 *                          |"last"|"false"|"incremental"|true|false, "sequence"?, …connector fields}
 *     postgresql    "schema", "table", "txId", "lsn", "xmin", "sequence": "[\"<lastCommitLsn>\",\"<lsn>\"]"
 *     mysql|mariadb "table", "server_id", "gtid", "file", "pos", "row", "thread", "query"
 *     sqlserver     "schema", "table", "change_lsn", "commit_lsn", "event_serial_no"
 *
 * Change.table: PostgreSQL and SQL Server `<schema>.<table>`, MySQL/MariaDB `<db>.<table>`.
 */
import type { ConnectorKind, KafkaCoordinates, SnapshotMarker, SourceInfo } from '../../change.ts';
import { fail, optionalInt64Text, optionalInteger, optionalString, requireString } from './fields.ts';
import type { Where } from './fields.ts';
import { parseJson, stringOf } from './json.ts';
import type { Json, JsonObject } from './json.ts';
import type { KafkaRecordInput, Mutable, StreamRecord } from './types.ts';
import { int64Text, INTEGER_RE } from './value-decoders.ts';

export function readConnector(raw: Json | undefined, path: string, where: Where): ConnectorKind {
  switch (raw) {
    case 'postgresql':
    case 'mysql':
    case 'mariadb':
    case 'sqlserver':
      return raw;
    default:
      return fail(where, path, 'one of postgresql|mysql|mariadb|sqlserver', raw);
  }
}

/** Change.table from `source` (index.ts header): PostgreSQL and SQL Server `<schema>.<table>`, MySQL `<db>.<table>`. */
export function tableFromSource(connector: ConnectorKind, source: JsonObject): string | undefined {
  const table = stringOf(source['table']);
  const qualifier = stringOf(
    connector === 'mysql' || connector === 'mariadb' ? source['db'] : source['schema'],
  );
  return table && qualifier ? `${qualifier}.${table}` : undefined;
}

export function kafkaCoordinates(record: KafkaRecordInput | StreamRecord): KafkaCoordinates | undefined {
  return record.partition === undefined || record.offset === undefined
    ? undefined
    : { topic: record.topic, partition: record.partition, offset: record.offset };
}

/**
 * SourceInfo from a `source` block, or from the flattened `__` fields laid out as one (`pathPrefix` says
 * which, for error messages). 64-bit positions become decimal strings; `tsUs` is ts_us, or ts_ms × 1000.
 */
export function decodeSource(
  connector: ConnectorKind,
  raw: JsonObject,
  pathPrefix: string,
  kafka: KafkaCoordinates | undefined,
  where: Where,
): SourceInfo {
  const source: Mutable<SourceInfo> = {
    connector,
    name: requireString(raw, 'name', pathPrefix, where),
    db: requireString(raw, 'db', pathPrefix, where),
    snapshot: readSnapshot(raw['snapshot'], `${pathPrefix}snapshot`, where),
  };
  const tsUs = optionalInteger(raw['ts_us'], `${pathPrefix}ts_us`, where);
  const tsMs = tsUs === undefined ? optionalInteger(raw['ts_ms'], `${pathPrefix}ts_ms`, where) : undefined;
  if (tsUs !== undefined) source.tsUs = tsUs;
  else if (tsMs !== undefined) source.tsUs = tsMs * 1000;

  const table = optionalString(raw, 'table', pathPrefix, where);
  if (table !== undefined) source.table = table;
  switch (connector) {
    case 'postgresql': {
      const schema = optionalString(raw, 'schema', pathPrefix, where);
      if (schema !== undefined) source.schema = schema;
      // Incremental-snapshot events carry no txId/lsn (§2.1).
      const txId = optionalInt64Text(raw['txId'], `${pathPrefix}txId`, where);
      if (txId !== undefined) source.txId = txId;
      const lsn = optionalInt64Text(raw['lsn'], `${pathPrefix}lsn`, where);
      if (lsn !== undefined) source.lsn = lsn;
      const sequence = readSequence(raw['sequence'], `${pathPrefix}sequence`, where);
      if (sequence !== undefined) source.sequence = sequence;
      break;
    }
    case 'mysql':
    case 'mariadb': {
      const file = optionalString(raw, 'file', pathPrefix, where);
      if (file !== undefined) source.file = file;
      const pos = optionalInt64Text(raw['pos'], `${pathPrefix}pos`, where);
      if (pos !== undefined) source.pos = pos;
      const row = optionalInteger(raw['row'], `${pathPrefix}row`, where);
      if (row !== undefined) source.row = row;
      const gtid = optionalString(raw, 'gtid', pathPrefix, where);
      if (gtid !== undefined) source.gtid = source.txId = gtid;
      break;
    }
    case 'sqlserver': {
      const schema = optionalString(raw, 'schema', pathPrefix, where);
      if (schema !== undefined) source.schema = schema;
      const commitLsn = optionalString(raw, 'commit_lsn', pathPrefix, where);
      // The commit LSN identifies the transaction (it is also the transaction topic's id).
      if (commitLsn !== undefined) source.commitLsn = source.txId = commitLsn;
      const changeLsn = optionalString(raw, 'change_lsn', pathPrefix, where);
      if (changeLsn !== undefined) source.changeLsn = changeLsn;
      const eventSerialNo = optionalInteger(raw['event_serial_no'], `${pathPrefix}event_serial_no`, where);
      if (eventSerialNo !== undefined) source.eventSerialNo = eventSerialNo;
      break;
    }
  }
  if (kafka !== undefined) source.kafka = kafka;
  return source;
}

/** `source.snapshot`: the string enum (§2), or a boolean as old docs print it. Absent means "false". */
function readSnapshot(raw: Json | undefined, path: string, where: Where): SnapshotMarker {
  switch (raw) {
    case undefined:
    case null:
    case false:
    case 'false':
      return false;
    case true:
    case 'true':
      return 'true';
    case 'first':
    case 'first_in_data_collection':
    case 'last_in_data_collection':
    case 'last':
    case 'incremental':
      return raw;
    default:
      return fail(
        where,
        path,
        'one of true|first|first_in_data_collection|last_in_data_collection|last|false|incremental',
        raw,
      );
  }
}

/** PostgreSQL `source.sequence`: a JSON string holding `["<lastCommitLsn>","<lsn>"]`, either may be null. */
function readSequence(
  raw: Json | undefined,
  path: string,
  where: Where,
): readonly [string | null, string | null] | undefined {
  if (raw === undefined || raw === null) return undefined;
  const text = stringOf(raw);
  const expected = `a JSON string '["<lastCommitLsn>","<lsn>"]'`;
  if (text === undefined) return fail(where, path, expected, raw);
  const simple = SIMPLE_SEQUENCE_RE.exec(text);
  if (simple !== null) return [simple[1] ?? null, simple[2] ?? null];
  let parsed: Json;
  try {
    parsed = parseJson(text);
  } catch {
    return fail(where, path, expected, raw);
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) return fail(where, path, expected, raw);
  const first = sequenceElement(parsed[0]);
  const second = sequenceElement(parsed[1]);
  if (first === undefined || second === undefined) return fail(where, path, expected, raw);
  return [first, second];
}

const SIMPLE_SEQUENCE_RE = /^\[(?:"(\d+)"|null),(?:"(\d+)"|null)\]$/;

function sequenceElement(raw: Json | undefined): string | null | undefined {
  if (raw === null) return null;
  const text = stringOf(raw) ?? int64Text(raw);
  return text !== undefined && INTEGER_RE.test(text) ? text : undefined;
}
