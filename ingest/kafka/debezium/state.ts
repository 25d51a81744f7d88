/**
 * Decoder state: what is cached per options object (one DecoderState per decoder): each topic's kind and the
 * table its name implies, the last key and value schema seen on it, compiled schemas by text, and the coercers
 * of each table's declared column types.
 *
 *   topic => <transactionTopic>                  -- 'transaction' (default <prefix>.transaction)
 *          | <heartbeatTopicPrefix>.…            -- 'heartbeat' (default __debezium-heartbeat.)
 *          | <prefix>                            -- 'schema-change'
 *          | <prefix>.<x>.<y> | <prefix>.<w>.<x>.<y> | …   -- 'data'; table <x>.<y>, database the first part
 */
import { parseJsonOrFail } from './fields.ts';
import type { Where } from './fields.ts';
import { placeholdersFor } from './placeholders.ts';
import type { Placeholders } from './placeholders.ts';
import { compileTopLevelSchema } from './schema.ts';
import type { StructSchema } from './schema.ts';
import { declareTable } from './schemaless.ts';
import type { DeclaredTable } from './schemaless.ts';
import type { DecoderOptions } from './types.ts';

type TopicKind = 'data' | 'transaction' | 'heartbeat' | 'schema-change';

export interface TopicState {
  readonly kind: TopicKind;
  /** Change.table derived from a data topic's name, when it has the `<prefix>.<a>.<b>[.<c>]` shape. */
  readonly table: string | undefined;
  /** The database part of the topic name (MySQL `<db>`, SQL Server `<db>`), when there is one. */
  readonly database: string | undefined;
  /** Last schema seen on this topic's keys and values: most records hit it with one string compare. */
  keySchema: StructSchema | undefined;
  valueSchema: StructSchema | undefined;
}

export interface TopicSchemaSlot {
  keySchema: StructSchema | undefined;
  valueSchema: StructSchema | undefined;
}

const MAX_CACHED_SCHEMAS = 1024;

export class DecoderState {
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
