/**
 * Debezium record → `Change`: a pure decoder (no Kafka client, no I/O) for the JSON that Debezium writes
 * through Kafka Connect's JsonConverter, to Kafka or to a Redis Stream (Debezium Server's Redis sink).
 * The consumer contract is `shared/reference/debezium-contract.md`; section numbers below point into it.
 * This file is the public API (createDebeziumDecoder, decodeDebeziumRecord, decodeRedisStreamEntry, and the
 * types of types.ts): import the decoder from here only.
 *
 * Wire format (one record; every number may exceed 2^53, so nothing goes through plain JSON.parse):
 *
 *   Record        => topic partition offset key value headers                   -- record.ts
 *   key           => null                                  -- table without a key, truncate (op t)
 *                  | Converted(KeyStruct)                  -- {"id": 7}           -- keys.ts
 *   value         => null                                  -- tombstone after a delete (§1.3)
 *                  | Converted(Envelope | FlatRow | TxEvent | Heartbeat | SchemaChange)
 *   Converted(T)  => {"schema": ConnectSchema, "payload": T}    -- JsonConverter schemas.enable=true
 *                  | T                                          -- schemas.enable=false   (converter.ts)
 *   Envelope      => {"before": Row|null, "after": Row|null, "source": Source,
 *                     "op": "c"|"u"|"d"|"r"|"t"|"m", "ts_ms", "ts_us"?, "ts_ns"?,
 *                     "transaction"?: {"id", "total_order", "data_collection_order"}|null,
 *                     "message"?: {"prefix", "content": base64}}               -- op m only (envelope.ts)
 *   Source        => {"version", "connector", "name", "ts_ms", "db", "snapshot", …}           -- source.ts
 *   FlatRow       => {<column>: value…, "__deleted"?: "true"|"false", "__op"?, "__table"?, "__lsn"?,
 *                     "__source_ts_ms"?, …}                 -- ExtractNewRecordState ("unwrap") §6.1 (flattened.ts)
 *   TxEvent       => {"status": "BEGIN"|"END", "id", "ts_ms", "event_count"?,
 *                     "data_collections"?: [{"data_collection", "event_count"}]}          -- §5.1 (events.ts)
 *   Heartbeat     => {"ts_ms"}                                                       -- §5.2 (record.ts)
 *   SchemaChange  => {"source", "databaseName", "schemaName", "ddl", "tableChanges": […]} -- §5.3 (events.ts)
 *   headers       => "__debezium.newkey" (on the d) | "__debezium.oldkey" (on the c) -- PK change §4.3 (keys.ts)
 *
 *   Topics: <prefix>.<schema>.<table> (PostgreSQL), <prefix>.<db>.<table> (MySQL/MariaDB),
 *           <prefix>.<db>.<schema>.<table> (SQL Server ≥ 2.0; <prefix>.<schema>.<table> before),
 *           <prefix>.transaction, __debezium-heartbeat.<prefix>, <prefix> (schema changes).   (state.ts)
 *
 * Layers, kept apart so CloudEvents and Avro (schema registry) can be added as new envelope formats:
 *   1. envelope format: bytes → { schema?: StructSchema, payload: Json }   converter.ts (readConverted: JsonConverter)
 *   2. value decoding:  Connect schema (or declared column types) → canonical values (ingest/values.ts)
 *                       schema.ts (compiled schemas), value-decoders.ts (per logical type), schemaless.ts
 *                       (declared column types), placeholders.ts (unchanged TOAST values)
 *   3. Debezium shapes: Envelope / FlatRow / TxEvent / Heartbeat / SchemaChange → DecodedRecord
 *                       record.ts (dispatch), envelope.ts, flattened.ts, events.ts, source.ts, keys.ts, redis.ts
 *   Underneath: json.ts (exact JSON), fields.ts (field access, DecodeError), state.ts (per-decoder caches),
 *   types.ts (what goes in and comes out). Imports point one way: from the shapes down to json.ts.
 *
 * Decisions (reasons in the doc comments next to the code):
 * - Change.table: PostgreSQL `<schema>.<table>`, MySQL/MariaDB `<db>.<table>`, SQL Server `<schema>.<table>`
 *   (the database stays in `source.db`). Tombstones and flattened rows without table fields take it from
 *   the topic name: the last two dot-separated parts after `<prefix>.`.
 * - Primary-key change: both halves carry `keyChange: {oldKey, newKey}` on the DecodedRecord, decoded from
 *   the record key and the `__debezium.newkey` / `__debezium.oldkey` header, so the consumer can pair them.
 * - Types outside values.ts (arrays, maps, structs such as geometry) become their JSON text, with exact numbers.
 * - The envelope `transaction` block is exposed next to the Change (`transaction`), for batching by END events.
 * - With a value schema, a change also carries its table's row schema (`rowSchema`: each column's type as
 *   Debezium declares it, and the declared types it decodes as, DECODES_AS), compiled once per schema text,
 *   so that a change of the table's shape can be noticed (schema-tracker.ts).
 * - Without schemas (schemas.enable=false) a value is decoded from its JSON type, coerced to the column type
 *   that `DecoderOptions.columnTypes(table)` declares: the assumptions are in schemaless.ts.
 */
import { DecodeError } from '../../errors.ts';
import { locationOf } from './fields.ts';
import type { Where } from './fields.ts';
import { decodeRecord } from './record.ts';
import { decodeStreamEntry } from './redis.ts';
import { DecoderState } from './state.ts';
import type {
  DebeziumDecoder,
  DecodedRecord,
  DecoderOptions,
  KafkaRecordInput,
  RedisStreamEntry,
} from './types.ts';

export type {
  DebeziumDecoder,
  DecodedChange,
  DecodedMessage,
  DecodedRecord,
  DecodedTombstone,
  DecodedTransaction,
  DecoderOptions,
  KafkaRecordInput,
  KeyChange,
  RedisStreamEntry,
  RowSchema,
  RowSchemaColumn,
  TransactionOrder,
} from './types.ts';

/** A decoder with its own caches (compiled schemas, topic kinds, declared tables). Create one per source. */
export function createDebeziumDecoder(options: DecoderOptions): DebeziumDecoder {
  const state = new DecoderState(options);
  return {
    decode: (record) => guarded(record, () => decodeRecord(state, record, record)),
    decodeRedisStreamEntry: (entry) => guardedEntry(state, entry),
  };
}

const decoders = new WeakMap<DecoderOptions, DecoderState>();

function stateFor(options: DecoderOptions): DecoderState {
  let state = decoders.get(options);
  if (state === undefined) {
    state = new DecoderState(options);
    decoders.set(options, state);
  }
  return state;
}

/**
 * Decode one Kafka record. Throws DecodeError (and nothing else) for input it cannot decode. Caches live
 * with the options object: pass the same object every time.
 */
export function decodeDebeziumRecord(record: KafkaRecordInput, options: DecoderOptions): DecodedRecord {
  return guarded(record, () => decodeRecord(stateFor(options), record, record));
}

/** Decode one entry written by Debezium Server's Redis sink, in its compact or extended format (§7.1). */
export function decodeRedisStreamEntry(entry: RedisStreamEntry, options: DecoderOptions): DecodedRecord {
  return guardedEntry(stateFor(options), entry);
}

function guardedEntry(state: DecoderState, entry: RedisStreamEntry): DecodedRecord {
  return guarded({ topic: entry.stream, streamEntryId: entry.id }, () => decodeStreamEntry(state, entry));
}

/**
 * Bad input must end as a DecodeError (it is parked, not retried). The decoder checks what it reads, so
 * this only catches what no check foresaw, such as a stack overflow on absurdly deep nesting.
 */
function guarded(where: Where, decode: () => DecodedRecord): DecodedRecord {
  try {
    return decode();
  } catch (error) {
    if (error instanceof DecodeError) throw error;
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new DecodeError(
      `decode(debezium): expected the record to decode, but decoding failed with ${reason} (${locationOf(where)})`,
      { cause: error },
    );
  }
}
