/**
 * The decoder's types: what goes in (KafkaRecordInput, RedisStreamEntry, DecoderOptions) and what comes out
 * (DecodedRecord and its kinds, RowSchema), all re-exported by index.ts; and two internal ones: StreamRecord,
 * the record a Redis stream entry stands for, and Mutable, for building readonly results. No code.
 *
 *   DecodedRecord => DecodedChange      {kind: 'change', change, transaction?, keyChange?, rowSchema?}  -- ops c u d r t
 *                  | DecodedTombstone   {kind: 'tombstone', table, key}
 *                  | DecodedTransaction {kind: 'transaction', status, id, eventCount?, dataCollections?, tsMs?}
 *                  | DecodedMessage     {kind: 'message', prefix, content, contentBase64, txId?, lsn?, tsUs?}
 *                  | {kind: 'heartbeat', tsMs?} | {kind: 'schema-change', ddl?, database?}
 */
import type { Change, ConnectorKind, Row } from '../../change.ts';
import type { ColumnType } from '../../../core/values.ts';

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

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface StreamRecord {
  readonly topic: string;
  readonly partition?: undefined;
  readonly offset?: undefined;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}
