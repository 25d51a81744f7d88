import type { ColumnType } from '../core/values.ts';

/** What the views need from one source table (ingest knows tables, not views). */
export interface TableRequirement {
  /** Schema-qualified name, 'public.orders'. */
  readonly name: string;
  readonly columns: Readonly<Record<string, { readonly type: ColumnType; readonly nullable: boolean }>>;
  readonly key: readonly string[];
  /** Views that need whole old rows on UPDATE/DELETE (aggregates): requires REPLICA IDENTITY FULL. */
  readonly needsOldRowFor: readonly string[];
}

/**
 * How a config names its source. Plain data, so a config can be validated and printed before any
 * connection is made; `createSource` (ingest/index.ts) turns it into a live `ChangeSource`.
 */

export interface PostgresSourceOptions {
  readonly kind: 'postgres';
  /** postgres://user:password@host:port/db; defaults to $DATABASE_URL. */
  readonly url?: string | undefined;
  /** Permanent logical replication slot (created when absent). */
  readonly slot?: string;
  /** Publication for the declared tables (created when absent). */
  readonly publication?: string;
  /** Rows per snapshot chunk (one atomic apply each). */
  readonly snapshotChunkRows?: number;
  /**
   * Changes per part of a transaction too large for one step (default 2,000): it is applied part
   * by part, its views unavailable to readers until the last part (docs/guarantees.md).
   */
  readonly transactionPartChanges?: number;
}

export interface KafkaSourceOptions {
  readonly kind: 'kafka';
  /** host:port list; defaults to $KAFKA_BROKERS (comma-separated). */
  readonly brokers?: readonly string[] | undefined;
  /** Debezium `topic.prefix`: topics are `<prefix>.<schema>.<table>`. */
  readonly topicPrefix: string;
  /** Consumer group id; defaults to `cdc-views-<config name>`. */
  readonly groupId?: string;
  /** Expect Debezium's transaction topic (`provide.transaction.metadata=true`) and apply whole transactions atomically. */
  readonly transactions?: boolean;
  /**
   * Changes per table per part of a transaction too large to hold (default 2,000): it is applied
   * part by part as its events arrive, its views unavailable to readers until the last part.
   */
  readonly transactionPartChanges?: number;
}

export type SourceOptions = PostgresSourceOptions | KafkaSourceOptions;

/** Source constructors for `defineConfig({ source: … })`. */
export const source = {
  /** The embedded default: PostgreSQL logical replication (pgoutput), no Kafka needed. */
  postgres(options: Omit<PostgresSourceOptions, 'kind'> = {}): PostgresSourceOptions {
    return { kind: 'postgres', ...options };
  },
  /** Debezium change events from Kafka. */
  kafka(options: Omit<KafkaSourceOptions, 'kind'>): KafkaSourceOptions {
    return { kind: 'kafka', ...options };
  },
};
