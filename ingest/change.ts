/**
 * The one internal change format. Every source (embedded pgoutput, Debezium over Kafka, …) yields
 * `ChangeBatch`es of `Change`s; nothing downstream knows where they came from.
 *
 * Modelled on the Debezium envelope (DESIGN.md §3), so the Kafka path is a thin decode:
 *
 *   Change  = { table: 'public.orders', op: 'c'|'u'|'d'|'r'|'t', before, after, key, source }
 *   Batch   = one source transaction (BEGIN…COMMIT) or one bounded chunk of the initial snapshot,
 *             plus the position to checkpoint once the batch is applied.
 *
 * Values are already typed (see values.ts): exact types (int8, numeric) travel as strings so no
 * digit is ever lost to a float.
 */
import type { Value } from '../core/values.ts';

/** c create · u update · d delete · r snapshot read · t truncate (DESIGN.md §3). */
export type Op = 'c' | 'u' | 'd' | 'r' | 't';

/**
 * A column value the source did not send because it did not change: PostgreSQL's unchanged
 * TOASTed datum (pgoutput tuple kind `u`, Debezium's `__debezium_unavailable_value`). The planner
 * replaces it with the value already known (the `before` image); it never reaches a view row.
 */
export const UNAVAILABLE: unique symbol = Symbol.for('cdc-views.unavailable');
export type Unavailable = typeof UNAVAILABLE;

/** A row as the source sent it: column name → typed value. */
export type Row = Readonly<Record<string, Value>>;
/** A row image inside a change, where unchanged TOASTed columns may be missing. */
export type ChangeRow = Readonly<Record<string, Value | Unavailable>>;

/** Which kind of primary database produced the change. */
export type ConnectorKind = 'postgresql' | 'mysql' | 'mariadb' | 'sqlserver' | 'mongodb';

/**
 * Where a change came from. The common Debezium `source` fields, flattened; connector-specific
 * ordering fields are optional. 64-bit positions are decimal strings (never JS numbers).
 */
export interface SourceInfo {
  readonly connector: ConnectorKind;
  /** Logical server name: Debezium `topic.prefix`, or the slot name on the embedded path. */
  readonly name: string;
  readonly db: string;
  readonly schema?: string;
  readonly table?: string;
  /** Source transaction id (PostgreSQL xid, MySQL GTID or file:pos). */
  readonly txId?: string;
  /** PostgreSQL WAL position of this change, as an unsigned decimal string. */
  readonly lsn?: string;
  /** PostgreSQL `source.sequence`: [lastCommitLsn, lsn]; either may be null. */
  readonly sequence?: readonly [string | null, string | null];
  /** MySQL/MariaDB binlog coordinates. */
  readonly file?: string;
  readonly pos?: string;
  readonly row?: number;
  readonly gtid?: string;
  /** SQL Server positions. */
  readonly commitLsn?: string;
  readonly changeLsn?: string;
  readonly eventSerialNo?: number;
  /** Commit (or change) time at the database, in microseconds since the epoch. */
  readonly tsUs?: number;
  /** Debezium's snapshot marker; `false` while streaming. */
  readonly snapshot: SnapshotMarker;
  /** Where a Kafka record came from, when it came through Kafka. */
  readonly kafka?: KafkaCoordinates;
}

export type SnapshotMarker =
  false | 'true' | 'first' | 'first_in_data_collection' | 'last_in_data_collection' | 'last' | 'incremental';

export interface KafkaCoordinates {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are int64: decimal string. */
  readonly offset: string;
}

export interface Change {
  /** Schema-qualified table name, e.g. `public.orders` (MySQL: `<database>.<table>`). */
  readonly table: string;
  readonly op: Op;
  /** Row before the change: null for c/r/t, and for u/d when the source sent no old image. */
  readonly before: ChangeRow | null;
  /** Row after the change: null for d/t. */
  readonly after: ChangeRow | null;
  /** Primary-key columns of the affected row; null for t. */
  readonly key: Row | null;
  readonly source: SourceInfo;
  /**
   * Where this change sits in the history of its row: a fixed-width token whose string order is
   * the source's order (PostgreSQL commit and change LSN, binlog file/pos/row, …). Sources that may
   * deliver a change twice or out of order set it, so that a change not newer than the one already
   * applied to its row is recognised and skipped. Absent: apply unconditionally.
   */
  readonly order?: string;
}

/**
 * A totally ordered, serializable source position: the checkpoint stored in Redis with the
 * view state. `stream` names an independently ordered log (a replication slot, a Kafka
 * partition); `token` is a fixed-width string whose lexicographic order is the log's order, so
 * the atomic apply step can compare positions without parsing them.
 */
export interface PositionEntry {
  readonly stream: string;
  readonly token: string;
}
export type SourcePosition = readonly PositionEntry[];

export interface ChangeBatch {
  readonly kind: 'transaction' | 'snapshot';
  readonly changes: readonly Change[];
  /** Checkpoint to store atomically with this batch's effect. */
  readonly position: SourcePosition;
  /** Commit time at the source (µs since epoch), when known: for lag and latency metrics. */
  readonly commitTimeUs?: number;
  /** Logical messages (pg_logical_emit_message / Debezium `m`) seen in this transaction. */
  readonly messages?: readonly LogicalMessage[];
  /** Input the source could not decode: parked in the dead-letter stream with this batch's position. */
  readonly deadLetters?: readonly SourceDeadLetter[];
  /** Set on the batch that completes the initial load: from here on the views are live. */
  readonly live?: boolean;
  /** Records the source recognised as re-sent copies of ones this batch holds, and dropped. */
  readonly skipped?: number;
  /**
   * Part of a transaction too large for one batch (its changes are cut into parts by a rule a
   * replay follows too, so a part has the same id and changes every time: PostgreSQL numbers
   * parts of a fixed size, Kafka names them by table and range). Every part but the last has no
   * position of its own; `probe` is a position the stored checkpoint passes only once the whole
   * transaction is applied (a part is a replay once it has).
   */
  readonly part?: {
    readonly txn: string;
    readonly index: number | string;
    readonly final: boolean;
    readonly probe: SourcePosition;
  };
  /** Source tables whose shape changed, as seen in this batch before its changes. */
  readonly schemaChanges?: readonly SchemaChange[];
}

/**
 * A source table changed shape while streaming (PostgreSQL's relation message, a new schema in a
 * Debezium event). The views layer decides what each means for each view.
 */
export type SchemaChange =
  | { readonly kind: 'renamed'; readonly table: string; readonly newName: string }
  | { readonly kind: 'columnsDropped'; readonly table: string; readonly columns: readonly string[] }
  | { readonly kind: 'columnsAdded'; readonly table: string; readonly columns: readonly string[] }
  | {
      readonly kind: 'typeChanged';
      readonly table: string;
      readonly column: string;
      readonly from: string;
      readonly to: string;
      /** The new type still decodes as the declared one (e.g. numeric(12,2) → numeric(12,3)), but the table was rewritten outside the stream. */
      readonly fitsDeclaration: boolean;
    }
  | { readonly kind: 'replicaIdentity'; readonly table: string; readonly from: string; readonly to: string };

export interface SourceDeadLetter {
  /** What was wrong, and where (topic, partition, offset). */
  readonly reason: string;
  /** The raw input, as text. */
  readonly payload: string;
}

export interface LogicalMessage {
  readonly prefix: string;
  readonly content: string;
  readonly lsn?: string;
}

/**
 * A source of change batches. The engine pulls batches, applies them to Redis, and only then
 * calls `ack` with the batch's position: a source must never consider a position durable before
 * that (DESIGN.md §6.3).
 */
export interface ChangeSource {
  /**
   * `exactly-ordered`: each change once, in order, with whole old rows (the embedded PostgreSQL
   * source with REPLICA IDENTITY FULL). `at-least-once`: changes may repeat or arrive without a
   * usable old row (Debezium over Kafka); the engine then keeps per-row images and positions.
   */
  readonly delivery: 'exactly-ordered' | 'at-least-once';
  /**
   * What a rebuild reads. `snapshot` (the default): the tables as they are now (PostgreSQL: a new
   * slot's snapshot). `log`: the same records again from the beginning (Kafka), so values the
   * source database rewrote outside the change stream (a column's type changed) come back as they
   * were sent, and a rebuild cannot bring them up to date.
   */
  readonly rebuildsFrom?: 'snapshot' | 'log';
  /** Start reading after `resumeFrom` (the checkpoint last stored with the views), or from the
   * beginning (initial snapshot) when null. */
  start(resumeFrom: SourcePosition | null): AsyncIterable<ChangeBatch>;
  /** Everything up to and including `position` is durable in Redis. */
  ack(position: SourcePosition): Promise<void>;
  /**
   * Why streaming cannot resume from `position` (the checkpoint found in Redis), or null when it
   * can: the slot is gone, the source already acknowledged more than Redis holds (Redis lost
   * acknowledged steps), retention deleted the records, …
   */
  resumeProblem?(position: SourcePosition): Promise<string | null>;
  /**
   * A second, short-lived source for backfilling some views while the others stay live: it reads
   * `tables` up to a point (a batch `live` once there), then every change after it, with positions
   * in this source's streams (PostgreSQL: a temporary slot's exported snapshot, then that slot's
   * stream; Kafka: the tables' topics again from their beginning, under a group of its own).
   * Sources without it rebuild every view instead.
   */
  backfill?(
    tables: readonly string[],
    onProgress?: (progress: { table: string; rows: number; estimatedRows: number; done: boolean }) => void,
  ): ChangeSource;
  /** Whether this source reads a stream of a position (a backfill reads some of the main source's). */
  readsStream?(stream: string): boolean;
  /**
   * Why these tables cannot be read again from their beginning exactly (a rebuild, a backfill), or
   * null: Kafka retention deleted the first records of a topic. Sources that always can lack it.
   */
  rereadProblem?(tables: readonly string[]): Promise<string | null>;
  close(): Promise<void>;
}

/** Compare two tokens of the same stream (fixed-width, so string order is log order). */
export function compareTokens(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
