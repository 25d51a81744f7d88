/**
 * Debezium record → `Change`: a pure decoder (no Kafka client, no I/O) for the JSON that Debezium writes
 * through Kafka Connect's JsonConverter, to Kafka or to a Redis Stream (Debezium Server's Redis sink).
 * The consumer contract is `shared/reference/debezium-contract.md`; section numbers below point into it.
 *
 * Wire format (one record; every number may exceed 2^53, so nothing goes through plain JSON.parse):
 *
 *   Record        => topic partition offset key value headers
 *   key           => null                                  -- table without a key, truncate (op t)
 *                  | Converted(KeyStruct)                  -- {"id": 7}
 *   value         => null                                  -- tombstone after a delete (§1.3)
 *                  | Converted(Envelope | FlatRow | TxEvent | Heartbeat | SchemaChange)
 *   Converted(T)  => {"schema": ConnectSchema, "payload": T}    -- JsonConverter schemas.enable=true
 *                  | T                                          -- schemas.enable=false
 *   Envelope      => {"before": Row|null, "after": Row|null, "source": Source,
 *                     "op": "c"|"u"|"d"|"r"|"t"|"m", "ts_ms", "ts_us"?, "ts_ns"?,
 *                     "transaction"?: {"id", "total_order", "data_collection_order"}|null,
 *                     "message"?: {"prefix", "content": base64}}               -- op m only
 *   Source        => {"version", "connector", "name", "ts_ms", "ts_us"?, "ts_ns"?, "db",
 *                     "snapshot": "true"|"first"|"first_in_data_collection"|"last_in_data_collection"
 *                                 |"last"|"false"|"incremental"|true|false, "sequence"?, …connector fields}
 *     postgresql    "schema", "table", "txId", "lsn", "xmin", "sequence": "[\"<lastCommitLsn>\",\"<lsn>\"]"
 *     mysql|mariadb "table", "server_id", "gtid", "file", "pos", "row", "thread", "query"
 *     sqlserver     "schema", "table", "change_lsn", "commit_lsn", "event_serial_no"
 *   FlatRow       => {<column>: value…, "__deleted"?: "true"|"false", "__op"?, "__table"?, "__lsn"?,
 *                     "__source_ts_ms"?, …}                 -- ExtractNewRecordState ("unwrap") §6.1
 *   TxEvent       => {"status": "BEGIN"|"END", "id", "ts_ms", "event_count"?,
 *                     "data_collections"?: [{"data_collection", "event_count"}]}          -- §5.1
 *   Heartbeat     => {"ts_ms"}                                                       -- §5.2
 *   SchemaChange  => {"source", "databaseName", "schemaName", "ddl", "tableChanges": […]} -- §5.3
 *   headers       => "__debezium.newkey" (on the d) | "__debezium.oldkey" (on the c) -- PK change §4.3
 *
 *   Topics: <prefix>.<schema>.<table> (PostgreSQL), <prefix>.<db>.<table> (MySQL/MariaDB),
 *           <prefix>.<db>.<schema>.<table> (SQL Server ≥ 2.0; <prefix>.<schema>.<table> before),
 *           <prefix>.transaction, __debezium-heartbeat.<prefix>, <prefix> (schema changes).
 *
 * Layers, kept apart so CloudEvents and Avro (schema registry) can be added as new envelope formats:
 *   1. envelope format: bytes → { schema?: StructSchema, payload: Json }   (readConverted: JsonConverter)
 *   2. value decoding:  Connect schema (or declared column types) → canonical values (values.ts)
 *   3. Debezium shapes: Envelope / FlatRow / TxEvent / Heartbeat / SchemaChange → DecodedRecord
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
 *
 * Without schemas (schemas.enable=false) a value is decoded from its JSON type, coerced to the column type
 * that `DecoderOptions.columnTypes(table)` declares. Assumptions there:
 * - numeric: a decimal string (decimal.handling.mode=string) or a JSON number (kept digit for digit); a
 *   `{scale, value}` VariableScaleDecimal. A base64 Decimal cannot be decoded (its scale is in the schema):
 *   DecodeError, asking for decimal.handling.mode=string or schemas.
 * - date: an integer is days since 1970-01-01 (io.debezium.time.Date); a string is kept.
 * - time, timestamp, timestamptz: an integer is microseconds (MicroTime / MicroTimestamp: PostgreSQL's
 *   adaptive default for precision 4–6, which is the default precision; MySQL's adaptive_time_microseconds).
 *   A column of precision 0–3 arrives in milliseconds and would be misread: keep schemas on for those, or use
 *   time.precision.mode=isostring / connect. Strings (isostring) are canonicalised.
 * - bytea: a base64 string (binary.handling.mode=base64, the default).
 * - A column that is not declared keeps its JSON type: an integer beyond 2^53 becomes its decimal string,
 *   other numbers stay numbers, objects and arrays become JSON text.
 */
import { createHash } from 'node:crypto';
import { isLosslessNumber, parse as parseLosslessJson } from 'lossless-json';
import { UNAVAILABLE } from '../change.ts';
import type {
  Change,
  ChangeRow,
  ConnectorKind,
  KafkaCoordinates,
  Op,
  Row,
  SnapshotMarker,
  SourceInfo,
  Unavailable,
} from '../change.ts';
import { decimalFromUnscaled, formatDecimal, parseDecimal } from '../decimal.ts';
import { DecodeError } from '../errors.ts';
import { canonicalTime, canonicalTimestamp, timestampFromMicros } from '../values.ts';
import type { ColumnType, Value } from '../values.ts';

// ─── Public API ──────────────────────────────────────────────────────────────────────────────────

/** What the Kafka adapter hands over, transport-neutral. */
export interface KafkaRecordInput {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are int64: decimal string. */
  readonly offset: string;
  readonly key: Buffer | string | null;
  readonly value: Buffer | string | null;
  readonly headers?: Readonly<Record<string, Buffer | string | undefined>>;
}

export interface DecoderOptions {
  /** Debezium `topic.prefix` (the logical server name). */
  readonly topicPrefix: string;
  /**
   * Declared column types per table ('public.orders' for PostgreSQL, '<database>.<table>' for MySQL/MariaDB,
   * '<schema>.<table>' for SQL Server), used when schemas are off. Called once per table and cached.
   */
  readonly columnTypes?: (table: string) => Readonly<Record<string, ColumnType>> | undefined;
  /**
   * The connector behind flattened (ExtractNewRecordState) records that do not carry `__connector`,
   * `__lsn`, `__file` or `__commit_lsn`. Envelopes always name their connector in `source`.
   */
  readonly connector?: ConnectorKind;
  /** Connector option `unavailable.value.placeholder` (default `__debezium_unavailable_value`; `hex:` prefix for bytes). */
  readonly unavailableValuePlaceholder?: string;
  /** Full name of the transaction metadata topic (default `<topicPrefix>.transaction`). */
  readonly transactionTopic?: string;
  /** Connector option `topic.heartbeat.prefix` (default `__debezium-heartbeat`). */
  readonly heartbeatTopicPrefix?: string;
  /** Debezium Server Redis sink `null.key` / `null.value` (both default `default`). */
  readonly redisNullKey?: string;
  readonly redisNullValue?: string;
}

export type DecodedRecord =
  | DecodedChange
  | DecodedTombstone
  | DecodedTransaction
  | DecodedMessage
  | { readonly kind: 'heartbeat'; readonly tsMs?: number }
  | { readonly kind: 'schema-change'; readonly ddl?: string; readonly database?: string };

/** A row change: ops c, u, d, r and t. */
export interface DecodedChange {
  readonly kind: 'change';
  readonly change: Change;
  /** The envelope's `transaction` block (connector option provide.transaction.metadata=true). */
  readonly transaction?: TransactionOrder;
  /**
   * Set on both halves of a primary-key change (§4.3): the `d` of the old key (header
   * `__debezium.newkey`) and the `c` of the new key (header `__debezium.oldkey`). Both carry the same
   * pair, so the consumer can link them; `change.op` tells which half this is.
   */
  readonly keyChange?: KeyChange;
  /**
   * The row schema of the change's table as Debezium declared it in this record (JsonConverter with
   * schemas.enable=true): one object per distinct schema, shared by every record that carries it.
   * Absent when the record came without a schema (schemas.enable=false): then there is nothing to
   * compare, and a change of the table's shape shows only in the values.
   */
  readonly rowSchema?: RowSchema;
}

/**
 * A table's columns as Debezium's value schema declares them. Compiled once per distinct schema text
 * (with the decoders), so reading it costs nothing per record; compare `id` first, which is equal
 * exactly when the columns and their type descriptions are.
 */
export interface RowSchema {
  /** A hash of the column names and type descriptions, in field order. */
  readonly id: string;
  readonly columns: ReadonlyMap<string, RowSchemaColumn>;
}

export interface RowSchemaColumn {
  /**
   * The type as Debezium declares it: the logical name when there is one, else the Connect type, plus
   * the parameters that change how values decode — `int32`, `int64`, `string`,
   * `io.debezium.time.MicroTimestamp`, `io.debezium.data.VariableScaleDecimal`,
   * `org.apache.kafka.connect.data.Decimal(scale=2)`.
   */
  readonly type: string;
  /** The declared column types whose canonical values (values.ts) this type decodes to. */
  readonly decodesAs: readonly ColumnType[];
}

export interface KeyChange {
  readonly oldKey: Row;
  readonly newKey: Row;
}

export interface TransactionOrder {
  /**
   * As sent. PostgreSQL (3.6.1, captured) writes `<txId>:<this event's LSN>`, which differs for every event
   * of one transaction and matches neither BEGIN's nor END's id: group PostgreSQL events by
   * `change.source.txId` (the part before ':'). MySQL/MariaDB use the GTID, the same for the whole transaction.
   */
  readonly id: string;
  /** 1-based position of the event in its transaction. */
  readonly totalOrder: number;
  /** 1-based position of the event among the transaction's events for the same table. */
  readonly dataCollectionOrder: number;
}

/** A record with a null value: delete by key. `key` is null only when the record had no key either. */
export interface DecodedTombstone {
  readonly kind: 'tombstone';
  readonly table: string;
  readonly key: Row | null;
}

/** A `<prefix>.transaction` event (§5.1). Table names follow Change.table. */
export interface DecodedTransaction {
  readonly kind: 'transaction';
  readonly status: 'BEGIN' | 'END';
  readonly id: string;
  readonly eventCount?: number;
  readonly dataCollections?: readonly { readonly table: string; readonly eventCount: number }[];
  readonly tsMs?: number;
}

/** A PostgreSQL logical decoding message (op m, `pg_logical_emit_message`). */
export interface DecodedMessage {
  readonly kind: 'message';
  readonly prefix: string;
  /** The content as UTF-8 text; invalid UTF-8 sequences become U+FFFD, so use `contentBase64` for binary content. */
  readonly content: string;
  /** The content exactly as sent (base64). */
  readonly contentBase64: string;
  /** Present for transactional messages only. */
  readonly txId?: string;
  readonly lsn?: string;
  readonly tsUs?: number;
}

/** A Debezium Server Redis sink entry (§7.1): the stream key is the topic, `fields` in XADD order. */
export interface RedisStreamEntry {
  readonly stream: string;
  readonly id: string;
  readonly fields:
    readonly string[] | ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>;
}

export interface DebeziumDecoder {
  decode(record: KafkaRecordInput): DecodedRecord;
  decodeRedisStreamEntry(entry: RedisStreamEntry): DecodedRecord;
}

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

// ─── Decoder state: what is cached per options object ────────────────────────────────────────────

type TopicKind = 'data' | 'transaction' | 'heartbeat' | 'schema-change';

interface TopicState {
  readonly kind: TopicKind;
  /** Change.table derived from a data topic's name, when it has the `<prefix>.<a>.<b>[.<c>]` shape. */
  readonly table: string | undefined;
  /** The database part of the topic name (MySQL `<db>`, SQL Server `<db>`), when there is one. */
  readonly database: string | undefined;
  /** Last schema seen on this topic's keys and values: most records hit it with one string compare. */
  keySchema: StructSchema | undefined;
  valueSchema: StructSchema | undefined;
}

interface TopicSchemaSlot {
  keySchema: StructSchema | undefined;
  valueSchema: StructSchema | undefined;
}

const MAX_CACHED_SCHEMAS = 1024;

class DecoderState {
  readonly options: DecoderOptions;
  readonly placeholder: Placeholders;
  readonly transactionTopic: string;
  readonly heartbeatTopicPrefix: string;
  readonly topics = new Map<string, TopicState>();
  readonly schemasByText = new Map<string, StructSchema>();
  readonly declaredTables = new Map<string, DeclaredTable | null>();

  constructor(options: DecoderOptions) {
    this.options = options;
    this.placeholder = placeholdersFor(options.unavailableValuePlaceholder ?? '__debezium_unavailable_value');
    this.transactionTopic = options.transactionTopic ?? `${options.topicPrefix}.transaction`;
    this.heartbeatTopicPrefix = `${options.heartbeatTopicPrefix ?? '__debezium-heartbeat'}.`;
  }

  topic(name: string): TopicState {
    let topic = this.topics.get(name);
    if (topic === undefined) {
      topic = this.classify(name);
      this.topics.set(name, topic);
    }
    return topic;
  }

  private classify(name: string): TopicState {
    const kind: TopicKind =
      name === this.transactionTopic
        ? 'transaction'
        : name.startsWith(this.heartbeatTopicPrefix)
          ? 'heartbeat'
          : name === this.options.topicPrefix
            ? 'schema-change'
            : 'data';
    const prefix = `${this.options.topicPrefix}.`;
    const parts = kind === 'data' && name.startsWith(prefix) ? name.slice(prefix.length).split('.') : [];
    const table = parts.length === 2 || parts.length === 3 ? parts.slice(-2).join('.') : undefined;
    const database = parts.length >= 2 ? parts[0] : undefined;
    return { kind, table, database, keySchema: undefined, valueSchema: undefined };
  }

  /** The struct schema whose JSON text is `text`, compiled once. */
  schema(text: string, where: Where, what: string): StructSchema {
    let schema = this.schemasByText.get(text);
    if (schema === undefined) {
      schema = compileTopLevelSchema(
        parseJsonOrFail(text, where, `the ${what} schema`),
        text,
        this.placeholder,
        where,
        what,
      );
      if (this.schemasByText.size >= MAX_CACHED_SCHEMAS) this.schemasByText.clear();
      this.schemasByText.set(text, schema);
    }
    return schema;
  }

  declared(table: string): DeclaredTable | null {
    let declared = this.declaredTables.get(table);
    if (declared === undefined) {
      const types = this.options.columnTypes?.(table);
      declared = types === undefined ? null : declareTable(types, this.placeholder);
      this.declaredTables.set(table, declared);
    }
    return declared;
  }
}

// ─── Records ─────────────────────────────────────────────────────────────────────────────────────

/** Where a record came from, for error messages: a Kafka record, or a Redis Stream entry. */
interface Where {
  readonly topic: string;
  readonly partition?: number;
  readonly offset?: string;
  readonly streamEntryId?: string;
}

function decodeRecord(
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

// ─── Envelopes (§1.2) ────────────────────────────────────────────────────────────────────────────

const OPS = 'c|u|d|r|t|m';

function decodeEnvelope(
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

function readConnector(raw: Json | undefined, path: string, where: Where): ConnectorKind {
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

/** Change.table from `source` (module header): PostgreSQL and SQL Server `<schema>.<table>`, MySQL `<db>.<table>`. */
function tableFromSource(connector: ConnectorKind, source: JsonObject): string | undefined {
  const table = stringOf(source['table']);
  const qualifier = stringOf(
    connector === 'mysql' || connector === 'mariadb' ? source['db'] : source['schema'],
  );
  return table && qualifier ? `${qualifier}.${table}` : undefined;
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

function kafkaCoordinates(record: KafkaRecordInput | StreamRecord): KafkaCoordinates | undefined {
  return record.partition === undefined || record.offset === undefined
    ? undefined
    : { topic: record.topic, partition: record.partition, offset: record.offset };
}

// ─── source (§2) ─────────────────────────────────────────────────────────────────────────────────

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * SourceInfo from a `source` block, or from the flattened `__` fields laid out as one (`pathPrefix` says
 * which, for error messages). 64-bit positions become decimal strings; `tsUs` is ts_us, or ts_ms × 1000.
 */
function decodeSource(
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

// ─── Flattened rows: ExtractNewRecordState (§6.1) ────────────────────────────────────────────────

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

function decodeFlattenedRow(
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

// ─── Keys and primary-key changes (§1.1, §4.3) ───────────────────────────────────────────────────

function decodeKey(
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

function readKeyChange(
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

// ─── Non-row events: messages, transactions, schema changes (§4.4, §5) ───────────────────────────

function decodeMessage(payload: JsonObject, source: JsonObject, where: Where): DecodedMessage {
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

function decodeTransactionEvent(payload: JsonObject, where: Where): DecodedTransaction {
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

function decodeSchemaChange(payload: JsonObject, where: Where): DecodedRecord {
  const ddl = optionalString(payload, 'ddl', 'payload.', where);
  const database = optionalString(payload, 'databaseName', 'payload.', where);
  return {
    kind: 'schema-change',
    ...(ddl === undefined ? {} : { ddl }),
    ...(database === undefined ? {} : { database }),
  };
}

// ─── Redis Stream entries (Debezium Server Redis sink, §7.1) ─────────────────────────────────────

interface StreamRecord {
  readonly topic: string;
  readonly partition?: undefined;
  readonly offset?: undefined;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

function decodeStreamEntry(state: DecoderState, entry: RedisStreamEntry): DecodedRecord {
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

// ─── Envelope format: JsonConverter, with or without schemas (§1.1) ──────────────────────────────

interface Converted {
  readonly schema: StructSchema | undefined;
  /** True when the JSON had a `schema` (also a null one): then the payload is never decoded with another schema. */
  readonly hadSchema: boolean;
  readonly payload: Json;
}

function textOf(bytes: Buffer | string): string {
  return typeof bytes === 'string' ? bytes : bytes.toString('utf8');
}

/**
 * Split `{"schema": S, "payload": P}` without parsing S again: S is compared with the last schema seen on
 * this topic (one memcmp on the record's bytes), else found by bracket matching and compiled once per
 * distinct text. Only P is decoded and parsed. Anything else (a schemaless payload, an unusual layout) is
 * parsed whole.
 */
function readConverted(
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

// ─── Kafka Connect schemas → value decoders (§3) ─────────────────────────────────────────────────

const INVALID: unique symbol = Symbol('invalid');
type Invalid = typeof INVALID;
type Decoded = Value | Unavailable | Invalid;
/** Decodes one non-null JSON value into its canonical form (values.ts), or INVALID. */
type Decode = (raw: Json) => Decoded;

interface FieldSpec {
  readonly name: string;
  /** What the decoder accepts, for error messages: "an int32", "a base64 Decimal (scale 2) or a JSON number". */
  readonly expected: string;
  readonly decode: Decode;
  /** The type as Debezium declares it, and the declared column types it decodes as (RowSchemaColumn). */
  readonly type: string;
  readonly decodesAs: readonly ColumnType[];
  /** The field's own schema when it is a struct (envelope before/after/source). */
  readonly struct: StructSchema | undefined;
}

interface StructSchema {
  /** The JSON text it was compiled from, when it came as text: the cache key. */
  readonly text: string | undefined;
  readonly name: string | undefined;
  readonly fields: readonly FieldSpec[];
  readonly byName: ReadonlyMap<string, FieldSpec>;
  /** The fields minus ExtractNewRecordState metadata, computed on first use. */
  flattened?: readonly FieldSpec[];
  /** `text` as UTF-8, for comparing with records that arrive as bytes; made on first use. */
  bytes?: Buffer;
  /** The row schema of an envelope (its `after`, else `before` struct), null when it has none; made on first use. */
  envelopeRow?: RowSchema | null;
  /** The row schema of a flattened row (its fields minus metadata); made on first use. */
  flattenedRow?: RowSchema;
}

/** Thrown while compiling a schema; turned into a DecodeError by compileTopLevelSchema. */
class SchemaShapeError extends Error {
  readonly path: string;
  readonly found: Json | undefined;
  constructor(path: string, expected: string, found: Json | undefined) {
    super(expected);
    this.path = path;
    this.found = found;
  }
}

function compileTopLevelSchema(
  json: Json,
  text: string | undefined,
  placeholder: Placeholders,
  where: Where,
  what: string,
): StructSchema {
  try {
    return compileStruct(json, text, placeholder, 'schema');
  } catch (error) {
    if (!(error instanceof SchemaShapeError)) throw error;
    return fail(where, `the ${what} ${error.path}`, error.message, error.found);
  }
}

function compileStruct(
  json: Json,
  text: string | undefined,
  placeholder: Placeholders,
  path: string,
): StructSchema {
  if (!isObject(json) || json['type'] !== 'struct' || !Array.isArray(json['fields'])) {
    throw new SchemaShapeError(path, 'a Kafka Connect struct schema {"type":"struct","fields":[…]}', json);
  }
  const fields = json['fields'].map((field, index) =>
    compileField(field, placeholder, `${path}.fields[${index}]`),
  );
  return {
    text,
    name: stringOf(json['name']),
    fields,
    byName: new Map(fields.map((field) => [field.name, field])),
  };
}

function compileField(json: Json, placeholder: Placeholders, path: string): FieldSpec {
  if (!isObject(json)) throw new SchemaShapeError(path, 'a field schema object', json);
  const name = stringOf(json['field']);
  if (name === undefined) throw new SchemaShapeError(`${path}.field`, 'a field name', json['field']);
  const struct =
    json['type'] === 'struct' && json['name'] !== VARIABLE_SCALE_DECIMAL
      ? compileStruct(json, undefined, placeholder, path)
      : undefined;
  const { decode, expected, type, decodesAs } = compileValue(json, placeholder, path);
  return { name, expected, decode, type, decodesAs, struct };
}

const VARIABLE_SCALE_DECIMAL = 'io.debezium.data.VariableScaleDecimal';

/**
 * What values of each kind of Debezium type decode to, as the declared column types whose values
 * (values.ts) they are: the one mapping from Debezium's types to ours, kept next to the decoders that
 * make it true. A column whose Debezium type does not decode as its declared type no longer fits its
 * declaration (ingest/kafka/schema-tracker.ts).
 *
 * Like the PostgreSQL path (types it does not model arrive as their text output), a declared `text`
 * takes any type that decodes to a string. A plain `string` is passed through as sent, and connectors
 * send other types as strings when told to (decimal.handling.mode=string, binary.handling.mode=base64,
 * …, as the schemaless coercers below accept them): it fits every declared type whose values are strings.
 */
const STRING_VALUED: readonly ColumnType[] = [
  'text', 'varchar', 'bpchar', 'uuid', 'json', 'jsonb', 'numeric', 'int8', 'date', 'time', 'timestamp',
  'timestamptz', 'bytea',
]; // prettier-ignore
const DECODES_AS = {
  integer: ['int2', 'int4'], // int8, int16, int32: a JS number
  int64: ['int8', 'text'], // decimal text
  decimal: ['numeric', 'text'], // Decimal, VariableScaleDecimal: decimal text
  float: ['float4', 'float8'],
  boolean: ['bool'],
  string: STRING_VALUED, // also io.debezium.data.Json, Uuid, Enum, …
  bytes: ['bytea', 'text'], // base64
  composite: ['json', 'jsonb', 'text'], // arrays, maps, structs: their JSON text
  date: ['date', 'text'],
  time: ['time', 'text'],
  timestamp: ['timestamp', 'text'], // a wall clock without a zone
  timestamptz: ['timestamptz', 'text'], // ZonedTimestamp: UTC
} as const satisfies Record<string, readonly ColumnType[]>;

interface CompiledValue {
  readonly decode: Decode;
  readonly expected: string;
  /** RowSchemaColumn.type */
  readonly type: string;
  readonly decodesAs: readonly ColumnType[];
}

/** The decoder for one schema: by logical name (`name`) first, then by Connect type. */
function compileValue(schema: JsonObject, placeholder: Placeholders, path: string): CompiledValue {
  const logicalName = stringOf(schema['name']);
  const named = (decode: Decode, expected: string, decodesAs: readonly ColumnType[]): CompiledValue => ({
    decode,
    expected,
    type: logicalName!,
    decodesAs,
  });
  switch (logicalName) {
    case 'org.apache.kafka.connect.data.Decimal': {
      const parameters = schema['parameters'];
      const scaleText = isObject(parameters) ? stringOf(parameters['scale']) : undefined;
      if (scaleText === undefined || !/^-?\d+$/.test(scaleText)) {
        throw new SchemaShapeError(
          `${path}.parameters.scale`,
          'the Decimal scale as a string',
          isObject(parameters) ? parameters['scale'] : undefined,
        );
      }
      const scale = Number(scaleText);
      if (Math.abs(scale) > MAX_DECIMAL_SCALE) {
        throw new SchemaShapeError(
          `${path}.parameters.scale`,
          `a Decimal scale within ±${MAX_DECIMAL_SCALE}`,
          scaleText,
        );
      }
      // The scale is part of the type: values decode at it, and PostgreSQL rewrites a column whose scale changes.
      return {
        decode: decimalDecoder(scale),
        expected: `a base64 Decimal (scale ${scale}) or a JSON number`,
        type: `${logicalName}(scale=${scale})`,
        decodesAs: DECODES_AS.decimal,
      };
    }
    case VARIABLE_SCALE_DECIMAL:
      return named(decodeVariableScaleDecimal, 'a VariableScaleDecimal {scale, value}', DECODES_AS.decimal);
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return named(decodeDays, 'an integer number of days since 1970-01-01', DECODES_AS.date);
    case 'io.debezium.time.Time':
    case 'org.apache.kafka.connect.data.Time':
      return named(timeOfDayDecoder(1_000, 3), 'milliseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.MicroTime':
      return named(timeOfDayDecoder(1_000_000, 6), 'microseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.NanoTime':
      return named(timeOfDayDecoder(1_000_000_000, 9), 'nanoseconds past midnight', DECODES_AS.time);
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return named(
        timestampDecoder(1_000n),
        'milliseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.MicroTimestamp':
      return named(
        timestampDecoder(1n),
        'microseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.NanoTimestamp':
      return named(
        decodeNanoTimestamp,
        'nanoseconds since the epoch (within ±275760 years)',
        DECODES_AS.timestamp,
      );
    case 'io.debezium.time.ZonedTimestamp':
      return named(zonedTimestamp, 'an ISO-8601 timestamp string', DECODES_AS.timestamptz);
    case 'io.debezium.time.IsoTime':
      return named(isoTime, 'an ISO-8601 time string', DECODES_AS.time);
    case 'io.debezium.time.IsoTimestamp':
      return named(isoTimestamp, 'an ISO-8601 timestamp string', DECODES_AS.timestamp);
    default:
      break;
  }
  const type = schema['type'];
  // Other logical names (io.debezium.data.Json, Uuid, Enum, …) decode by their Connect type.
  const typed = (decode: Decode, expected: string, decodesAs: readonly ColumnType[]): CompiledValue => ({
    decode,
    expected,
    type: logicalName ?? String(type),
    decodesAs,
  });
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
      return typed(decodeInt32, `an ${type}`, DECODES_AS.integer);
    case 'int64':
      return typed(decodeInt64, 'an int64', DECODES_AS.int64);
    case 'float32':
    case 'float64':
    case 'float': // not Connect types, but apache/flink's Debezium test data writes them for float32/float64
    case 'double':
      return typed(decodeDouble, `a ${type}`, DECODES_AS.float);
    case 'boolean':
      return typed(decodeBoolean, 'a boolean', DECODES_AS.boolean);
    case 'string':
      return typed(stringDecoder(placeholder), 'a string', DECODES_AS.string);
    case 'bytes':
      return typed(bytesDecoder(placeholder), 'base64 bytes', DECODES_AS.bytes);
    case 'array':
    case 'map':
    case 'struct':
      return typed(
        compositeDecoder(placeholder, type),
        type === 'array' ? 'an array' : 'an object',
        DECODES_AS.composite,
      );
    default:
      throw new SchemaShapeError(
        `${path}.type`,
        'a Kafka Connect type (int8…int64, float32, float64, boolean, string, bytes, array, map, struct)',
        type,
      );
  }
}

/** An envelope's row schema: its `after` struct, else its `before` struct; null when it has neither. */
function envelopeRowSchema(schema: StructSchema): RowSchema | undefined {
  if (schema.envelopeRow === undefined) {
    const row = schema.byName.get('after')?.struct ?? schema.byName.get('before')?.struct;
    schema.envelopeRow = row === undefined ? null : rowSchemaOf(row.fields);
  }
  return schema.envelopeRow ?? undefined;
}

/** Once per distinct schema: the columns with their type descriptions, and a hash of them as the identity. */
function rowSchemaOf(fields: readonly FieldSpec[]): RowSchema {
  const columns = new Map<string, RowSchemaColumn>();
  for (const field of fields) columns.set(field.name, { type: field.type, decodesAs: field.decodesAs });
  const text = JSON.stringify(fields.map((field) => [field.name, field.type]));
  return { id: createHash('sha1').update(text).digest('base64url'), columns };
}

function decodeStructRow(
  fields: readonly FieldSpec[],
  raw: JsonObject,
  path: string,
  where: Where,
): ChangeRow {
  const row: Record<string, Value | Unavailable> = {};
  for (const field of fields) {
    const value = ownField(raw, field.name);
    let decoded: Decoded = null;
    if (value !== undefined && value !== null) {
      decoded = field.decode(value);
      if (decoded === INVALID) fail(where, `${path}.${field.name}`, field.expected, value);
    }
    if (field.name === '__proto__')
      Object.defineProperty(row, field.name, {
        value: decoded,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else row[field.name] = decoded;
  }
  return row;
}

// ─── Value decoders ──────────────────────────────────────────────────────────────────────────────

const INTEGER_RE = /^-?\d+$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DECIMAL_TEXT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function safeIntegerOf(raw: Json): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined;
  const text = numberTextOf(raw);
  if (text === undefined || !INTEGER_RE.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Integer text of a JSON integer of any size. */
function int64Text(raw: Json | undefined): string | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? String(raw === 0 ? 0 : raw) : undefined;
  const text = numberTextOf(raw);
  return text !== undefined && INTEGER_RE.test(text) ? text : undefined;
}

function bigIntOf(raw: Json): bigint | undefined {
  const text = int64Text(raw);
  return text === undefined ? undefined : BigInt(text);
}

const decodeInt32: Decode = (raw) => safeIntegerOf(raw) ?? INVALID;
const decodeInt64: Decode = (raw) => int64Text(raw) ?? INVALID;
const decodeBoolean: Decode = (raw) => (typeof raw === 'boolean' ? raw : INVALID);

/** A double: a JSON number, or Jackson's quoted "NaN" / "Infinity" / "-Infinity". */
const decodeDouble: Decode = (raw) => {
  if (typeof raw === 'number') return raw;
  const number = numberTextOf(raw);
  if (number !== undefined) return Number(number);
  const text = stringOf(raw);
  return text !== undefined && NON_FINITE_NUMBERS.has(text) ? Number(text) : INVALID;
};

const NON_FINITE_NUMBERS: ReadonlySet<string> = new Set(['NaN', 'Infinity', '-Infinity']);

function stringDecoder(placeholder: Placeholders): Decode {
  return (raw) => {
    const text = stringOf(raw);
    return text === undefined ? INVALID : text === placeholder.text ? UNAVAILABLE : text;
  };
}

function bytesDecoder(placeholder: Placeholders): Decode {
  return (raw) => {
    const text = stringOf(raw);
    return text === undefined
      ? INVALID
      : text === placeholder.base64 || text === placeholder.text
        ? UNAVAILABLE
        : text;
  };
}

/** Arrays, maps and structs are not modelled by values.ts: their JSON text, numbers exact (§4.2 placeholders aside). */
function compositeDecoder(placeholder: Placeholders, type: 'array' | 'map' | 'struct'): Decode {
  return (raw) => {
    if (type === 'array' ? !Array.isArray(raw) : !isObject(raw)) return INVALID;
    return isCompositePlaceholder(raw, placeholder) ? UNAVAILABLE : jsonText(raw);
  };
}

/** Connect Decimal: base64 two's-complement unscaled bytes, or a JSON number with decimal.format=NUMERIC. */
function decimalDecoder(scale: number): Decode {
  return (raw) => {
    const number = typeof raw === 'number' ? String(raw) : numberTextOf(raw);
    if (number !== undefined) return hasModestExponent(number) ? decimalTextAtScale(number, scale) : INVALID;
    const base64 = stringOf(raw);
    const unscaled = base64 === undefined ? undefined : unscaledFromBase64(base64);
    return unscaled === undefined ? INVALID : decimalFromUnscaled(unscaled, scale);
  };
}

const decodeVariableScaleDecimal: Decode = (raw) => {
  if (!isObject(raw)) return INVALID;
  const scale = safeIntegerOf(raw['scale'] ?? null);
  const base64 = stringOf(raw['value']);
  const unscaled = base64 === undefined ? undefined : unscaledFromBase64(base64);
  if (scale === undefined || unscaled === undefined || Math.abs(scale) > MAX_DECIMAL_SCALE) return INVALID;
  return decimalFromUnscaled(unscaled, scale);
};

/** PostgreSQL's limit on numeric display scale; also keeps 10n ** scale cheap for hostile input. */
const MAX_DECIMAL_SCALE = 16383;
const EXPONENT_RE = /[eE]([+-]?\d+)$/;

/** A decimal or JSON number text whose exponent stays within MAX_DECIMAL_SCALE. */
function hasModestExponent(text: string): boolean {
  const exponent = EXPONENT_RE.exec(text);
  return exponent === null || Math.abs(Number(exponent[1])) <= MAX_DECIMAL_SCALE;
}

/** Big-endian two's complement, as java.math.BigInteger.toByteArray writes it. */
function unscaledFromBase64(base64: string): bigint | undefined {
  if (base64.length === 0 || !BASE64_RE.test(base64)) return undefined;
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length <= 6) return BigInt(bytes.readIntBE(0, bytes.length));
  return BigInt.asIntN(bytes.length * 8, BigInt(`0x${bytes.toString('hex')}`));
}

/** Exact decimal text, with at least `scale` fraction digits (a JSON number drops trailing zeros). */
function decimalTextAtScale(text: string, scale: number): string {
  const decimal = parseDecimal(text);
  return decimal.scale >= scale
    ? formatDecimal(decimal)
    : formatDecimal({ unscaled: decimal.unscaled * 10n ** BigInt(scale - decimal.scale), scale });
}

const MS_PER_DAY = 86_400_000;
const MAX_DATE_MS = 8.64e15;

const decodeDays: Decode = (raw) => {
  const days = safeIntegerOf(raw);
  return days === undefined ? INVALID : (dateFromDays(days) ?? INVALID);
};

function dateFromDays(days: number): string | undefined {
  const ms = days * MS_PER_DAY;
  if (!(Math.abs(ms) <= MAX_DATE_MS)) return undefined;
  const iso = new Date(ms).toISOString();
  return iso.slice(0, iso.indexOf('T'));
}

function timeOfDayDecoder(unitsPerSecond: number, digits: number): Decode {
  return (raw) => {
    const units = safeIntegerOf(raw);
    return units === undefined ? INVALID : (timeOfDay(units, unitsPerSecond, digits) ?? INVALID);
  };
}

/** 'HH:MM:SS[.f…]' with trailing fraction zeros dropped, like canonicalTime. 24:00:00 is allowed (PostgreSQL). */
function timeOfDay(units: number, unitsPerSecond: number, digits: number): string | undefined {
  if (units < 0 || units > 86_400 * unitsPerSecond) return undefined;
  const seconds = Math.floor(units / unitsPerSecond);
  const fraction = units - seconds * unitsPerSecond;
  const hh = Math.floor(seconds / 3600);
  const mm = Math.floor(seconds / 60) % 60;
  const ss = seconds % 60;
  return `${twoDigits(hh)}:${twoDigits(mm)}:${twoDigits(ss)}${fractionText(fraction, digits)}`;
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function fractionText(fraction: number | bigint, digits: number): string {
  if (fraction === 0 || fraction === 0n) return '';
  return `.${String(fraction).padStart(digits, '0').replace(/0+$/, '')}`;
}

/** PostgreSQL ±infinity timestamps, as Debezium encodes them in every timestamp precision (§3). */
const POSITIVE_INFINITY_TIMESTAMP = 9223372036825200000n;
const NEGATIVE_INFINITY_TIMESTAMP = -9223372036832400000n;
const MAX_TIMESTAMP_MICROS = 8_640_000_000_000_000_000n;

function infinityOf(units: bigint): string | undefined {
  return units === POSITIVE_INFINITY_TIMESTAMP
    ? 'infinity'
    : units === NEGATIVE_INFINITY_TIMESTAMP
      ? '-infinity'
      : undefined;
}

/** Timestamp (ms) or MicroTimestamp (µs): a wall-clock time encoded as if UTC, printed without a zone. */
function timestampDecoder(microsPerUnit: bigint): Decode {
  return (raw) => {
    const units = bigIntOf(raw);
    if (units === undefined) return INVALID;
    const infinity = infinityOf(units);
    if (infinity !== undefined) return infinity;
    const micros = units * microsPerUnit;
    if (micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS) return INVALID;
    return timestampFromMicros(micros, false);
  };
}

/** NanoTimestamp keeps all 9 fraction digits (trailing zeros dropped). */
const decodeNanoTimestamp: Decode = (raw) => {
  const nanos = bigIntOf(raw);
  if (nanos === undefined) return INVALID;
  const infinity = infinityOf(nanos);
  if (infinity !== undefined) return infinity;
  let seconds = nanos / 1_000_000_000n;
  if (nanos % 1_000_000_000n < 0n) seconds -= 1n;
  const micros = seconds * 1_000_000n;
  if (micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS) return INVALID;
  return `${timestampFromMicros(micros, false)}${fractionText(nanos - seconds * 1_000_000_000n, 9)}`;
};

const zonedTimestamp: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : checkedTimestamp(text, true);
};
const isoTimestamp: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : checkedTimestamp(text, false);
};

/** canonicalTimestamp, or INVALID where it throws (an impossible date with an offset: '2023-13-45T…+01'). */
function checkedTimestamp(text: string, zoned: boolean): string | Invalid {
  try {
    return canonicalTimestamp(text, zoned);
  } catch {
    return INVALID;
  }
}
const isoTime: Decode = (raw) => {
  const text = stringOf(raw);
  return text === undefined ? INVALID : canonicalTime(text);
};

// ─── Unchanged TOAST placeholders (§4.2) ─────────────────────────────────────────────────────────

/** Every form `unavailable.value.placeholder` takes, per io.debezium.connector.postgresql.UnchangedToastedPlaceholder. */
interface Placeholders {
  /** text, varchar, json, xml; and the element of a text[] */
  readonly text: string;
  /** bytea (base64 in JSON); and the element of a bytea[] */
  readonly base64: string;
  /** int[] / bigint[]: the placeholder's (signed) byte values */
  readonly byteValues: readonly number[];
  /** uuid[]: UUID.nameUUIDFromBytes(placeholder bytes), an MD5 name-based (version 3) UUID */
  readonly uuid: string;
}

function placeholdersFor(configured: string): Placeholders {
  const bytes = configured.startsWith('hex:')
    ? Buffer.from(configured.slice(4), 'hex')
    : Buffer.from(configured, 'utf8');
  const md5 = createHash('md5').update(bytes).digest();
  md5[6] = ((md5[6] ?? 0) & 0x0f) | 0x30;
  md5[8] = ((md5[8] ?? 0) & 0x3f) | 0x80;
  const hex = md5.toString('hex');
  return {
    text: bytes.toString('utf8'),
    base64: bytes.toString('base64'),
    byteValues: [...new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length)],
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** A text[]/bytea[]/uuid[] of the one placeholder element, an int[] of its bytes, or the hstore map. */
function isCompositePlaceholder(raw: Json, placeholder: Placeholders): boolean {
  if (Array.isArray(raw)) {
    if (raw.length === 1) {
      const element = raw[0];
      return element === placeholder.text || element === placeholder.base64 || element === placeholder.uuid;
    }
    const bytes = placeholder.byteValues;
    if (raw.length !== bytes.length) return false;
    for (let i = 0; i < bytes.length; i++) if (raw[i] !== bytes[i]) return false;
    return true;
  }
  if (!isObject(raw)) return false;
  const keys = Object.keys(raw);
  return keys.length === 1 && keys[0] === placeholder.text && raw[placeholder.text] === placeholder.text;
}

// ─── Without schemas: declared column types (module header) ──────────────────────────────────────

interface Coercer {
  readonly expected: string;
  readonly decode: Decode;
}

type DeclaredTable = ReadonlyMap<string, Coercer>;

function declareTable(types: Readonly<Record<string, ColumnType>>, placeholder: Placeholders): DeclaredTable {
  return new Map(Object.entries(types).map(([column, type]) => [column, coercerFor(type, placeholder)]));
}

function coercerFor(type: ColumnType, placeholder: Placeholders): Coercer {
  const declared = `(declared ${type})`;
  switch (type) {
    case 'bool':
      return {
        expected: `a boolean ${declared}`,
        decode: (raw) => (typeof raw === 'boolean' ? raw : raw === 1 ? true : raw === 0 ? false : INVALID),
      };
    case 'int2':
    case 'int4':
      return { expected: `an integer ${declared}`, decode: decodeInt32 };
    case 'int8':
      return {
        expected: `an integer ${declared}`,
        decode: (raw) => int64Text(raw) ?? integerString(raw) ?? INVALID,
      };
    case 'float4':
    case 'float8':
      return { expected: `a number ${declared}`, decode: decodeDouble };
    case 'numeric':
      return { expected: `a decimal string or a JSON number ${declared}`, decode: decodeDeclaredNumeric };
    case 'date':
      return {
        expected: `days since 1970-01-01 or a date string ${declared}`,
        decode: orString(decodeDays, (text) => text),
      };
    case 'time':
      return {
        expected: `microseconds past midnight or a time string ${declared}`,
        decode: orString(timeOfDayDecoder(1_000_000, 6), canonicalTime),
      };
    case 'timestamp':
      return {
        expected: `microseconds since the epoch or a timestamp string ${declared}`,
        decode: orString(timestampDecoder(1n), (text) => checkedTimestamp(text, false)),
      };
    case 'timestamptz':
      return {
        expected: `microseconds since the epoch or a timestamp string ${declared}`,
        decode: orString(zonedMicros, (text) => checkedTimestamp(text, true)),
      };
    case 'json':
    case 'jsonb': {
      const asString = stringDecoder(placeholder);
      return {
        expected: `JSON text ${declared}`,
        decode: (raw) => (Array.isArray(raw) || isObject(raw) ? jsonText(raw) : asString(raw)),
      };
    }
    case 'bytea':
      return { expected: `base64 bytes ${declared}`, decode: bytesDecoder(placeholder) };
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'uuid':
      return { expected: `a string ${declared}`, decode: stringDecoder(placeholder) };
  }
}

function integerString(raw: Json): string | undefined {
  const text = stringOf(raw);
  return text !== undefined && INTEGER_RE.test(text) ? text : undefined;
}

/** An integer decoder that also accepts a string (isostring modes), canonicalised by `fromText`. */
function orString(fromInteger: Decode, fromText: (text: string) => string | Invalid): Decode {
  return (raw) => {
    if (typeof raw === 'string' && numberTextOf(raw) === undefined) {
      const text = stringOf(raw);
      return text === undefined ? INVALID : fromText(text);
    }
    return fromInteger(raw);
  };
}

const zonedMicros: Decode = (raw) => {
  const micros = bigIntOf(raw);
  if (micros === undefined) return INVALID;
  return micros > MAX_TIMESTAMP_MICROS || micros < -MAX_TIMESTAMP_MICROS
    ? INVALID
    : timestampFromMicros(micros, true);
};

/** numeric without a schema: a decimal string, a JSON number (exact), or a VariableScaleDecimal struct. */
const decodeDeclaredNumeric: Decode = (raw) => {
  if (typeof raw === 'number') return String(raw === 0 ? 0 : raw);
  const number = numberTextOf(raw);
  if (number !== undefined) {
    if (!/[eE]/.test(number)) return number;
    return hasModestExponent(number) ? formatDecimal(parseDecimal(number)) : INVALID;
  }
  if (isObject(raw)) return decodeVariableScaleDecimal(raw);
  const text = stringOf(raw);
  if (text === undefined) return INVALID;
  if (NON_FINITE_NUMBERS.has(text)) return text; // PostgreSQL numeric NaN/±Infinity, as pgoutput gives them
  if (!DECIMAL_TEXT_RE.test(text) || !hasModestExponent(text)) return INVALID;
  return /[eE+]|^-?\.|\.$/.test(text) ? formatDecimal(parseDecimal(text)) : text;
};

/** A base64 Decimal looks like this; say how to fix it rather than only that it failed. */
function schemalessHint(coercer: Coercer | undefined, raw: Json): string {
  if (coercer?.decode !== decodeDeclaredNumeric) return '';
  const text = stringOf(raw);
  if (text === undefined || !BASE64_RE.test(text)) return '';
  return (
    ', which looks like a base64 Decimal: its scale is only in the schema, so it cannot be decoded without one.' +
    ' Set decimal.handling.mode=string on the connector, or enable value schemas (value.converter.schemas.enable=true)'
  );
}

/**
 * A row without a schema: declared columns are coerced to their type, undeclared ones keep their JSON
 * type. Values are replaced in place (the object is fresh from the parser); with `skip`, a new object is
 * built without the skipped columns.
 */
function decodeSchemalessRow(
  state: DecoderState,
  raw: JsonObject,
  declared: DeclaredTable | null,
  path: string,
  where: Where,
  skip?: (column: string) => boolean,
): ChangeRow {
  const row: Record<string, Json | Unavailable> = skip === undefined ? raw : {};
  for (const column in raw) {
    if (skip?.(column)) continue;
    const value = raw[column] as Json;
    let decoded: Decoded = null;
    if (value !== null) {
      const coercer = declared?.get(column);
      decoded = coercer === undefined ? decodeUndeclared(value, state.placeholder) : coercer.decode(value);
      if (decoded === INVALID) {
        const expected = coercer?.expected ?? 'a JSON value';
        fail(where, `${path}.${column}`, expected, value, schemalessHint(coercer, value));
      }
    }
    if (column === '__proto__' && skip !== undefined)
      Object.defineProperty(row, column, {
        value: decoded,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else row[column] = decoded;
  }
  return row as ChangeRow;
}

function decodeUndeclared(raw: Json, placeholder: Placeholders): Decoded {
  if (typeof raw === 'string') {
    if (raw.charCodeAt(0) !== 0)
      return raw === placeholder.text || raw === placeholder.base64 ? UNAVAILABLE : raw;
    const number = numberTextOf(raw);
    if (number === undefined) return stringOf(raw) ?? INVALID;
    if (!INTEGER_RE.test(number)) return Number(number);
    const value = Number(number);
    return Number.isSafeInteger(value) ? value : number;
  }
  if (typeof raw !== 'object' || raw === null) return raw;
  return isCompositePlaceholder(raw, placeholder) ? UNAVAILABLE : jsonText(raw);
}

// ─── Exact JSON (§0.1) ───────────────────────────────────────────────────────────────────────────

/**
 * Parsed JSON in which every number a double may not hold exactly — integers of 16 digits or more, and
 * any number with a fraction or an exponent — is kept as its source text, marked by a leading U+0000:
 * `"\u0000123.40"`. Strings that really begin with U+0000 are marked by a second U+0000. Read values
 * through numberTextOf / stringOf, never directly.
 */
type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

const NUMBER_MARK = '\u0000';

/**
 * Exact JSON parsing, fast: when the text contains no `\u0000` escape, number tokens that need it are
 * rewritten as marked strings and V8's JSON.parse does the rest (about 2.5× faster than lossless-json
 * on a Debezium payload). Otherwise, or on a syntax error (for its message), lossless-json parses it.
 */
function parseJson(text: string): Json {
  if (!text.includes('\\u0000')) {
    const marked = markInexactNumbers(text);
    if (marked !== undefined) {
      try {
        return JSON.parse(marked) as Json;
      } catch {
        // lossless-json below reports where the text is malformed
      }
    }
  }
  return fromLossless(parseLosslessJson(text, null, { onDuplicateKey: ({ newValue }) => newValue }));
}

/** parseJson, or undefined when the text is not JSON. */
function tryParseJson(text: string): Json | undefined {
  try {
    return parseJson(text);
  } catch {
    return undefined;
  }
}

function parseJsonOrFail(text: string, where: Where, what: string, whole: Buffer | string = text): Json {
  try {
    return parseJson(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return fail(where, what, 'JSON', textOf(whole), ` (${reason})`);
  }
}

const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;
const PLUS = 43;
const DOT = 46;
const ZERO = 48;
const NINE = 57;
const LOWER_E = 101;
const UPPER_E = 69;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const COLON = 58;
const COMMA = 44;
const MAX_EXACT_DIGITS = 15;
const JSON_NUMBER_RE = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The text with each inexact number token replaced by a marked string; undefined when the text has an
 * unterminated string or a malformed number (the slow path then reports it).
 */
function markInexactNumbers(text: string): string | undefined {
  const length = text.length;
  let out = '';
  let copiedUpTo = 0;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i);
      if (i < 0) return undefined;
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const start = i;
      let digits = c === MINUS ? 0 : 1;
      let exact = true;
      for (i++; i < length; i++) {
        const d = text.charCodeAt(i);
        if (d >= ZERO && d <= NINE) digits++;
        else if (d === DOT || d === LOWER_E || d === UPPER_E || d === PLUS || d === MINUS) exact = false;
        else break;
      }
      if (!exact || digits > MAX_EXACT_DIGITS) {
        const token = text.slice(start, i);
        if (!JSON_NUMBER_RE.test(token)) return undefined;
        out += `${text.slice(copiedUpTo, start)}"\\u0000${token}"`;
        copiedUpTo = i;
      }
    } else {
      i++;
    }
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

/** Index just past the closing quote of the string opening at `open`, or -1. */
function endOfString(text: string, open: number): number {
  let close = text.indexOf('"', open + 1);
  while (close !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(close - 1 - backslashes) === BACKSLASH) backslashes++;
    if ((backslashes & 1) === 0) return close + 1;
    close = text.indexOf('"', close + 1);
  }
  return -1;
}

/** Index just past the JSON value starting at `start` (objects and arrays by bracket matching), or -1. */
function endOfJsonValue(text: string, start: number): number {
  const first = text.charCodeAt(start);
  if (first === QUOTE) return endOfString(text, start);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let i = start;
    while (i < text.length && !isDelimiter(text.charCodeAt(i))) i++;
    return i > start ? i : -1;
  }
  let depth = 0;
  for (let i = start; i < text.length;) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i);
      if (i < 0) return -1;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

function isWhitespace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function isDelimiter(c: number): boolean {
  return isWhitespace(c) || c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET;
}

/** lossless-json's output in parseJson's representation. */
function fromLossless(value: unknown): Json {
  if (typeof value === 'string') return value.charCodeAt(0) === 0 ? NUMBER_MARK + value : value;
  if (value === null || typeof value === 'boolean') return value;
  if (isLosslessNumber(value)) return numberToken(value.value);
  if (Array.isArray(value)) return value.map(fromLossless);
  const object: JsonObject = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    Object.defineProperty(object, key, {
      value: fromLossless(entry),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return object;
}

function numberToken(text: string): number | string {
  const digits = text.charCodeAt(0) === MINUS ? text.length - 1 : text.length;
  return digits <= MAX_EXACT_DIGITS && /^-?\d+$/.test(text) ? Number(text) : NUMBER_MARK + text;
}

/** The source text of a number parseJson kept as text; undefined for anything else. */
function numberTextOf(raw: Json | undefined): string | undefined {
  return typeof raw === 'string' && raw.charCodeAt(0) === 0 && raw.charCodeAt(1) !== 0
    ? raw.slice(1)
    : undefined;
}

/** The value of a JSON string; undefined for anything else (numbers kept as text included). */
function stringOf(raw: Json | undefined): string | undefined {
  if (typeof raw !== 'string') return undefined;
  if (raw.charCodeAt(0) !== 0) return raw;
  return raw.charCodeAt(1) === 0 ? raw.slice(1) : undefined;
}

function isObject(raw: Json | undefined): raw is JsonObject {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw);
}

/** obj[name] when it is obj's own property (a column may be called `constructor` or `__proto__`). */
function ownField(obj: JsonObject, name: string): Json | undefined {
  const value = obj[name];
  return value === undefined || (typeof value === 'object' && value !== null) || typeof value === 'function'
    ? Object.hasOwn(obj, name)
      ? value
      : undefined
    : value;
}

/** Compact JSON text with exact numbers. */
function jsonText(raw: Json): string {
  if (typeof raw === 'string') {
    const number = numberTextOf(raw);
    return number ?? JSON.stringify(stringOf(raw));
  }
  if (Array.isArray(raw)) return `[${raw.map(jsonText).join(',')}]`;
  if (isObject(raw)) {
    return `{${Object.keys(raw)
      .map((key) => `${JSON.stringify(key)}:${jsonText(raw[key] as Json)}`)
      .join(',')}}`;
  }
  return JSON.stringify(raw);
}

// ─── Field access and errors ─────────────────────────────────────────────────────────────────────

function objectPayload(converted: Converted, what: string, where: Where): JsonObject {
  const payload = converted.payload;
  return isObject(payload) ? payload : fail(where, 'payload', `a ${what} event object`, payload);
}

function requireString(obj: JsonObject, key: string, pathPrefix: string, where: Where): string {
  const raw = ownField(obj, key);
  return stringOf(raw) ?? fail(where, `${pathPrefix}${key}`, 'a string', raw);
}

function optionalString(obj: JsonObject, key: string, pathPrefix: string, where: Where): string | undefined {
  const raw = ownField(obj, key);
  if (raw === undefined || raw === null) return undefined;
  return stringOf(raw) ?? fail(where, `${pathPrefix}${key}`, 'a string or null', raw);
}

function requireInteger(raw: Json | undefined, path: string, where: Where): number {
  return (
    (raw === undefined || raw === null ? undefined : safeIntegerOf(raw)) ??
    fail(where, path, 'an integer', raw)
  );
}

function optionalInteger(raw: Json | undefined, path: string, where: Where): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  return safeIntegerOf(raw) ?? fail(where, path, 'an integer or null', raw);
}

function optionalInt64Text(raw: Json | undefined, path: string, where: Where): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  return int64Text(raw) ?? fail(where, path, 'an int64 or null', raw);
}

function locationOf(where: Where): string {
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
function fail(where: Where, path: string, expected: string, found: Json | undefined, detail = ''): never {
  throw new DecodeError(
    `decode(debezium): expected ${path} to be ${expected}, but found ${describeFound(found)}${detail} (${locationOf(where)})`,
  );
}
