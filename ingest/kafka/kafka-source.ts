/**
 * Debezium change events from Kafka: the production path. The only file that imports kafkajs
 * (in maintenance mode; swap it here for @platformatic/kafka or confluent-kafka-javascript).
 *
 *   start(checkpoint)
 *     │ create the table topics (and <prefix>.transaction) if Debezium has not yet: an empty
 *     │ table has no topic, and a consumer cannot subscribe to what does not exist
 *     │ join the group; on every assignment, seek each partition to just after the offset stored
 *     │ in Redis with the views (the earliest offset when rebuilding) — Kafka's own committed
 *     │ offsets are for monitoring only. A table topic starts one record earlier: the last record
 *     │ applied is read again, not applied, for its schema (the baseline of schema-tracker.ts)
 *     ▼
 *   eachBatch → decode (debezium/index.ts; undecodable → dead letter)
 *     → the table's shape compared with the schema the record carries (schema-tracker.ts): changes
 *       ride with the record into its batch (ChangeBatch.schemaChanges) → TransactionAssembler
 *     → ChangeBatches (whole transactions with provide.transaction.metadata=true, else one per
 *       record), each with its Kafka positions → the engine applies them atomically with those
 *       positions → ack: commit the offsets to Kafka
 *
 * Effectively once: a record at or below the stored offset of its partition is never applied
 * again (consumer restart, rebalance); a change Debezium sends twice (connector restart) carries a
 * source position not newer than its row's image, and the engine skips it (views/plan/row-images.ts).
 * One consumer per deployment: transactions are assembled across partitions, so they must all
 * reach the same process.
 */
import { Kafka, logLevel, type Consumer, type EachBatchPayload, type Admin } from 'kafkajs';
import type { Change, ChangeBatch, ChangeSource, SchemaChange, SourcePosition } from '../change.ts';
import { BatchQueue } from '../batch-queue.ts';
import { DecodeError, ServiceError } from '../errors.ts';
import type { KafkaSourceOptions, TableRequirement } from '../source-options.ts';
import type { ColumnType } from '../../core/values.ts';
import { createDebeziumDecoder, type DebeziumDecoder, type DecodedRecord } from './debezium/index.ts';
import { SchemaTracker } from './schema-tracker.ts';
import { streamOf, TransactionAssembler } from './transaction-assembler.ts';

export interface KafkaSourceConfig {
  readonly brokers: readonly string[];
  readonly topicPrefix: string;
  readonly groupId: string;
  readonly transactions: boolean;
  readonly tables: readonly TableRequirement[];
  /** Events of a table per part of a transaction too large to hold (default 2,000). */
  readonly partChanges?: number;
  /** A backfill's own group: deleted when it closes. */
  readonly ephemeralGroup?: boolean;
  /** Records read per table of those the topics held when reading began (a backfill shows it). */
  readonly onProgress?: (progress: {
    table: string;
    rows: number;
    estimatedRows: number;
    done: boolean;
  }) => void;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** The topic Debezium writes a table to: `<prefix>.<schema|database>.<table>`. */
export function topicOf(prefix: string, table: string): string {
  return `${prefix}.${table}`;
}

/**
 * A change's place in its row's history (see Change.order): a kind letter ('s' snapshot read,
 * 't' streamed) and the source position, fixed width per connector.
 */
export function orderOf(change: Change): string | undefined {
  const s = change.source;
  const kind = s.snapshot === false ? 't' : 's';
  const pad = (v: string | number | undefined, width: number): string => String(v ?? 0).padStart(width, '0');
  switch (s.connector) {
    case 'postgresql':
      return s.lsn === undefined ? kind : `${kind}${pad(s.lsn, 20)}`;
    case 'mysql':
    case 'mariadb': {
      if (s.file === undefined) return kind;
      const fileIndex = /(\d+)$/.exec(s.file)?.[1] ?? '0';
      return `${kind}${pad(fileIndex, 10)}${pad(s.pos, 20)}${pad(s.row, 10)}`;
    }
    case 'sqlserver':
      return s.commitLsn === undefined
        ? kind
        : `${kind}${s.commitLsn}${s.changeLsn ?? ''}${pad(s.eventSerialNo, 10)}`;
    default:
      return undefined;
  }
}

export class KafkaSource implements ChangeSource {
  readonly delivery = 'at-least-once' as const;
  /** A rebuild reads the topics again from their beginning: the records as Debezium sent them, not the tables as they are. */
  readonly rebuildsFrom = 'log' as const;
  readonly config: KafkaSourceConfig;
  private readonly kafka: Kafka;
  private consumer: Consumer | null = null;
  private admin: Admin | null = null;
  /** Between the fetch loop and start()'s consumer; close() ends it. */
  private queue: BatchQueue | null = null;
  /** Last applied offset per stream: from the checkpoint, then from every ack. */
  private readonly applied = new Map<string, bigint>();
  private closed = false;

  constructor(config: KafkaSourceConfig) {
    this.config = config;
    this.kafka = new Kafka({
      clientId: `cdc-views-${config.groupId}`,
      brokers: [...config.brokers],
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => {
        if (entry.level <= logLevel.WARN)
          config.log?.('warn', `kafkajs: ${entry.log.message}`, { namespace: entry.namespace });
      },
      retry: { retries: 8 },
    });
  }

  private get topics(): string[] {
    const topics = this.config.tables.map((t) => topicOf(this.config.topicPrefix, t.name));
    if (this.config.transactions) topics.push(`${this.config.topicPrefix}.transaction`);
    return topics;
  }

  /**
   * Why the stored offsets cannot be resumed from, or null: resumable while every stored offset is
   * still in its topic (retention has not deleted past it). Offsets Kafka has as committed beyond
   * what Redis holds are fine: Kafka still has those records, so they are simply read again.
   */
  async resumeProblem(position: SourcePosition): Promise<string | null> {
    const stored = position.filter((p) => p.stream.startsWith('kafka:'));
    if (stored.length === 0) return 'the stored checkpoint holds no Kafka positions';
    const admin = await this.connectAdmin();
    for (const { stream, token } of stored) {
      const [, topic, partition] = /^kafka:(.+):(\d+)$/.exec(stream) ?? [];
      if (!topic) return `the stored position '${stream}' is not a Kafka partition`;
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => null);
      const low = offsets?.find((o) => o.partition === Number(partition))?.low;
      if (low === undefined) return `topic ${topic} partition ${partition} no longer exists`;
      if (BigInt(token) + 1n < BigInt(low))
        return `Kafka no longer has ${topic}[${partition}] after offset ${token} (retention deleted up to ${low})`;
    }
    return null;
  }

  async *start(resumeFrom: SourcePosition | null): AsyncGenerator<ChangeBatch> {
    const admin = await this.connectAdmin();
    await this.ensureTopics(admin);
    this.applied.clear();
    for (const { stream, token } of resumeFrom ?? [])
      if (stream.startsWith('kafka:')) this.applied.set(stream, BigInt(token));

    // What "caught up" means: every partition consumed up to its end as of now.
    const target = new Map<string, bigint>();
    const lows = new Map<string, string>();
    for (const topic of this.topics) {
      for (const o of await fetchOffsets(admin, topic)) {
        const stream = streamOf(topic, o.partition);
        lows.set(stream, o.low);
        if (BigInt(o.high) > BigInt(o.low)) target.set(stream, BigInt(o.high) - 1n);
      }
    }

    const queue = (this.queue = new BatchQueue(undefined, undefined, 512));
    const tables = new Set(this.config.tables.map((t) => t.name));
    const types = new Map(
      this.config.tables.map((t) => [
        t.name,
        Object.fromEntries(Object.entries(t.columns).map(([c, i]) => [c, i.type])),
      ]),
    );
    const decoder: DebeziumDecoder = createDebeziumDecoder({
      topicPrefix: this.config.topicPrefix,
      columnTypes: (table) => types.get(table) as Record<string, ColumnType> | undefined,
    });
    // Shape changes, from the schema Debezium sends with each record (schema-tracker.ts). With
    // schemas.enable=false records carry none: there is nothing to compare, and nothing is detected.
    const shapes = new SchemaTracker(this.config.tables, orderOf);
    const tableTopics = new Set(this.config.tables.map((t) => topicOf(this.config.topicPrefix, t.name)));
    const assembler = new TransactionAssembler({
      tables,
      orderOf,
      partChanges: this.config.partChanges ?? 2000,
      onForcedRelease: (txKey) =>
        this.config.log?.(
          'warn',
          'released a transaction without all the events its END announced: a later transaction overtook them',
          { txKey },
        ),
    });
    const consumed = new Map<string, bigint>();
    const progress = this.progressReporter(target, lows, consumed);
    let live = target.size === 0;
    if (live) queue.push({ kind: 'transaction', changes: [], position: [], live: true });

    const consumer = (this.consumer = this.kafka.consumer({
      groupId: this.config.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 50,
    }));
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      // Start each assigned partition right after what the views already hold.
      for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
        for (const partition of partitions) {
          const stream = streamOf(topic, partition);
          const stored = this.applied.get(stream);
          const low = BigInt(lows.get(stream) ?? '0');
          // A table topic starts at the last record already applied, read again for its schema only
          // (the baseline the next records' schemas are compared with); the others right after it.
          const from =
            stored === undefined ? low : tableTopics.has(topic) && stored >= low ? stored : stored + 1n;
          consumer.seek({ topic, partition, offset: String(from) });
        }
      }
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart)
        queue.fail(
          new ServiceError('KAFKA', `Kafka consumer crashed: ${payload.error.message}`, {
            retriable: true,
            cause: payload.error,
          }),
        );
    });
    await consumer.connect();
    await consumer.subscribe({ topics: this.topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload) => {
        const stream = streamOf(batch.topic, batch.partition);
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) return;
          const offset = BigInt(message.offset);
          const stored = this.applied.get(stream);
          const input = {
            topic: batch.topic,
            partition: batch.partition,
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers: headersOf(message.headers),
          };
          if (stored === undefined || offset > stored) {
            let record;
            try {
              record = decoder.decode(input);
            } catch (error) {
              if (!(error instanceof DecodeError)) throw error;
              record = { kind: 'dead-letter' as const, letter: deadLetter(input, error) };
            }
            let schemaChanges: readonly SchemaChange[] | undefined;
            if (record.kind === 'change' && record.rowSchema !== undefined) {
              schemaChanges = shapes.observe(record.change, record.rowSchema);
              if (schemaChanges.length > 0)
                this.config.log?.('warn', 'a source table changed shape', {
                  table: record.change.table,
                  changes: schemaChanges,
                });
            }
            assembler.add({ topic: batch.topic, partition: batch.partition, offset, record, schemaChanges });
            consumed.set(stream, offset);
          } else if (offset === stored && tableTopics.has(batch.topic)) {
            const record = decodeQuietly(decoder, input);
            if (record?.kind === 'change' && record.rowSchema !== undefined)
              shapes.baseline(record.change, record.rowSchema);
          }
          resolveOffset(message.offset);
        }
        for (const released of assembler.drain()) queue.push(released);
        if (
          !live &&
          [...target].every(([s, high]) => (consumed.get(s) ?? this.applied.get(s) ?? -1n) >= high) &&
          assembler.size === 0
        ) {
          live = true;
          queue.push({ kind: 'transaction', changes: [], position: [], live: true });
        }
        progress?.(batch.topic, live);
        await heartbeat();
        await queue.waitForSpace();
      },
    });

    try {
      yield* queue.batches(() => this.closed);
    } finally {
      await this.stopConsumer();
    }
  }

  /**
   * Backfill `tables` beside the running stream: their topics (and the transaction topic) read again
   * from the beginning under a group of its own, which is deleted when the backfill closes.
   */
  backfill(
    tables: readonly string[],
    onProgress?: (progress: { table: string; rows: number; estimatedRows: number; done: boolean }) => void,
  ): KafkaSource {
    const wanted = new Set(tables);
    return new KafkaSource({
      ...this.config,
      tables: this.config.tables.filter((t) => wanted.has(t.name)),
      groupId: `${this.config.groupId}-backfill-${Date.now().toString(36)}`,
      ephemeralGroup: true,
      ...(onProgress ? { onProgress } : {}),
    });
  }

  async rereadProblem(tables: readonly string[]): Promise<string | null> {
    const admin = await this.connectAdmin();
    const existing = new Set(await admin.listTopics());
    const lost: string[] = [];
    for (const table of tables) {
      const topic = topicOf(this.config.topicPrefix, table);
      if (!existing.has(topic)) continue;
      for (const o of await fetchOffsets(admin, topic))
        if (BigInt(o.low) > 0n) lost.push(`${topic}[${o.partition}] starts at offset ${o.low}`);
    }
    if (lost.length === 0) return null;
    return (
      `Kafka no longer has the first records of ${lost.join(', ')} (retention or a delete-records deleted them), so views cannot be built again from the topics exactly. ` +
      'Fix: keep every record in the table topics (retention.ms=-1, or cleanup.policy=compact), then take a new Debezium snapshot of those tables (an incremental snapshot through the signal channel)'
    );
  }

  readsStream(stream: string): boolean {
    const topic = /^kafka:(.+):\d+$/.exec(stream)?.[1];
    return topic !== undefined && this.topics.includes(topic);
  }

  async ack(position: SourcePosition): Promise<void> {
    const commits: { topic: string; partition: number; offset: string }[] = [];
    for (const { stream, token } of position) {
      const m = /^kafka:(.+):(\d+)$/.exec(stream);
      if (!m) continue;
      const offset = BigInt(token);
      if ((this.applied.get(stream) ?? -1n) < offset) this.applied.set(stream, offset);
      commits.push({ topic: m[1]!, partition: Number(m[2]), offset: String(offset + 1n) });
    }
    // Kafka's committed offsets are for lag monitoring; the views' own positions live in Redis.
    if (commits.length > 0) await this.consumer?.commitOffsets(commits).catch(() => undefined);
  }

  /** Per table: records read of those its topic held when reading began (for a backfill's progress). */
  private progressReporter(
    target: ReadonlyMap<string, bigint>,
    lows: ReadonlyMap<string, string>,
    consumed: ReadonlyMap<string, bigint>,
  ): ((topic: string, live: boolean) => void) | null {
    const report = this.config.onProgress;
    if (!report) return null;
    const tableOf = new Map(
      this.config.tables.map((t) => [topicOf(this.config.topicPrefix, t.name), t.name]),
    );
    return (topic, live) => {
      const table = tableOf.get(topic);
      if (table === undefined) return;
      let rows = 0n;
      let estimated = 0n;
      let done = true;
      for (const [stream, high] of target) {
        if (!stream.startsWith(`kafka:${topic}:`)) continue;
        const low = BigInt(lows.get(stream) ?? '0');
        const at = consumed.get(stream);
        estimated += high - low + 1n;
        if (at !== undefined) rows += (at < high ? at : high) - low + 1n;
        if (at === undefined || at < high) done = false;
      }
      report({ table, rows: Number(rows), estimatedRows: Number(estimated), done: done || live });
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    // End start(): a pending next() returns null, and a fetch loop waiting for space is let go
    // (the consumer's disconnect waits for it).
    this.queue?.close();
    this.queue?.fail(new ServiceError('KAFKA', 'the Kafka source was closed', { retriable: true }));
    await this.stopConsumer();
    if (this.config.ephemeralGroup)
      await this.admin?.deleteGroups([this.config.groupId]).catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.admin = null;
  }

  private async stopConsumer(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.disconnect().catch(() => undefined);
  }

  private async connectAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    return this.admin;
  }

  /** Debezium creates a table's topic with its first event; create the missing ones so we can subscribe. */
  private async ensureTopics(admin: Admin): Promise<void> {
    const existing = new Set(await admin.listTopics());
    const missing = this.topics.filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    this.config.log?.('info', 'creating Kafka topics Debezium has not created yet', { topics: missing });
    await admin
      .createTopics({ topics: missing.map((topic) => ({ topic })), waitForLeaders: true })
      .catch((error: unknown) => {
        throw new ServiceError('KAFKA', `Could not create topics ${missing.join(', ')}: ${String(error)}`, {
          retriable: true,
          cause: error,
        });
      });
  }
}

/** A record decoded for its schema only: undefined when it does not decode (it was dead-lettered when it was applied). */
function decodeQuietly(
  decoder: DebeziumDecoder,
  input: Parameters<DebeziumDecoder['decode']>[0],
): DecodedRecord | undefined {
  try {
    return decoder.decode(input);
  } catch (error) {
    if (error instanceof DecodeError) return undefined;
    throw error;
  }
}

/** A topic's offsets; right after a topic is created its leader may not be known yet, so retry a little. */
async function fetchOffsets(admin: Admin, topic: string): ReturnType<Admin['fetchTopicOffsets']> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 5)));
    }
  }
}

function headersOf(
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined,
): Record<string, Buffer | string | undefined> {
  const out: Record<string, Buffer | string | undefined> = {};
  for (const [name, value] of Object.entries(headers ?? {}))
    out[name] = Array.isArray(value) ? value[0] : value;
  return out;
}

function deadLetter(
  input: { topic: string; partition: number; offset: string; key: Buffer | null; value: Buffer | null },
  error: DecodeError,
): { reason: string; payload: string } {
  const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8').slice(0, 65_536));
  return {
    reason: error.message,
    payload: JSON.stringify({
      topic: input.topic,
      partition: input.partition,
      offset: input.offset,
      key: text(input.key),
      value: text(input.value),
    }),
  };
}
