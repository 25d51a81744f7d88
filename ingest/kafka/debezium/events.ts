/**
 * Non-row events (§4.4, §5): transaction BEGIN/END, schema changes, and the logical decoding message of op m.
 *
 *   TxEvent        => {"status": "BEGIN"|"END", "id", "ts_ms", "event_count"?,
 *                      "data_collections"?: [{"data_collection", "event_count"}]}          -- §5.1
 *   SchemaChange   => {"source", "databaseName", "schemaName", "ddl", "tableChanges": […]} -- §5.3
 *   Envelope(op m) => {"op": "m", "source": Source, "message": {"prefix", "content": base64}} -- §4.4
 *
 * SQL Server's data collections `<db>.<schema>.<table>` become Change.table `<schema>.<table>`. Heartbeats
 * ({"ts_ms"}, §5.2) are read where they are dispatched, in record.ts.
 */
import {
  fail,
  optionalInt64Text,
  optionalInteger,
  optionalString,
  requireInteger,
  requireString,
} from './fields.ts';
import type { Where } from './fields.ts';
import { isObject, stringOf } from './json.ts';
import type { JsonObject } from './json.ts';
import type { DecodedMessage, DecodedRecord, DecodedTransaction, Mutable } from './types.ts';
import { BASE64_RE } from './value-decoders.ts';

export function decodeMessage(payload: JsonObject, source: JsonObject, where: Where): DecodedMessage {
  const message = payload['message'];
  if (!isObject(message)) fail(where, 'payload.message', 'an object {prefix, content}', message);
  const prefix = requireString(message, 'prefix', 'payload.message.', where);
  const contentBase64 = stringOf(message['content']);
  if (contentBase64 === undefined || !BASE64_RE.test(contentBase64)) {
    fail(where, 'payload.message.content', 'base64 bytes', message['content']);
  }
  const result: Mutable<DecodedMessage> = {
    kind: 'message',
    prefix,
    content: Buffer.from(contentBase64, 'base64').toString('utf8'),
    contentBase64,
  };
  const txId = optionalInt64Text(source['txId'], 'payload.source.txId', where);
  if (txId !== undefined) result.txId = txId;
  const lsn = optionalInt64Text(source['lsn'], 'payload.source.lsn', where);
  if (lsn !== undefined) result.lsn = lsn;
  const tsUs = optionalInteger(source['ts_us'], 'payload.source.ts_us', where);
  const tsMs = optionalInteger(source['ts_ms'], 'payload.source.ts_ms', where);
  if (tsUs !== undefined) result.tsUs = tsUs;
  else if (tsMs !== undefined) result.tsUs = tsMs * 1000;
  return result;
}

export function decodeTransactionEvent(payload: JsonObject, where: Where): DecodedTransaction {
  const status = payload['status'];
  if (status !== 'BEGIN' && status !== 'END') fail(where, 'payload.status', 'one of BEGIN|END', status);
  const result: Mutable<DecodedTransaction> = {
    kind: 'transaction',
    status,
    id: requireString(payload, 'id', 'payload.', where),
  };
  const eventCount = optionalInteger(payload['event_count'], 'payload.event_count', where);
  if (eventCount !== undefined) result.eventCount = eventCount;
  const collections = payload['data_collections'];
  if (collections !== undefined && collections !== null) {
    if (!Array.isArray(collections)) fail(where, 'payload.data_collections', 'an array', collections);
    result.dataCollections = collections.map((entry, index) => {
      const path = `payload.data_collections[${index}]`;
      if (!isObject(entry)) return fail(where, path, 'an object {data_collection, event_count}', entry);
      return {
        table: tableOfDataCollection(requireString(entry, 'data_collection', `${path}.`, where)),
        eventCount: requireInteger(entry['event_count'], `${path}.event_count`, where),
      };
    });
  }
  const tsMs = optionalInteger(payload['ts_ms'], 'payload.ts_ms', where);
  if (tsMs !== undefined) result.tsMs = tsMs;
  return result;
}

/** SQL Server names data collections `<db>.<schema>.<table>`; Change.table is `<schema>.<table>`. */
function tableOfDataCollection(name: string): string {
  const parts = name.split('.');
  return parts.length === 3 ? `${parts[1]}.${parts[2]}` : name;
}

export function decodeSchemaChange(payload: JsonObject, where: Where): DecodedRecord {
  const ddl = optionalString(payload, 'ddl', 'payload.', where);
  const database = optionalString(payload, 'databaseName', 'payload.', where);
  return {
    kind: 'schema-change',
    ...(ddl === undefined ? {} : { ddl }),
    ...(database === undefined ? {} : { database }),
  };
}
