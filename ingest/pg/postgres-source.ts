/**
 * The embedded default source: PostgreSQL logical replication (pgoutput) from a permanent, named
 * slot, with a consistent initial snapshot.
 *
 *   start(null)                                     start(checkpoint)
 *     │ check catalog, ensure publication              │ check catalog, ensure publication
 *     │ drop a stale slot of ours                      │ slot must exist (else: snapshot again)
 *     │ CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT      │
 *     │ snapshot: REPEATABLE READ at that snapshot,    │
 *     │   chunks of op 'r' rows (no position), the     │
 *     │   last chunk carries the slot's consistent     │
 *     │   point ──────────────────────────┐            │
 *     ▼                                   ▼            ▼
 *   START_REPLICATION SLOT … LOGICAL <consistent point | checkpoint>
 *     BEGIN … COMMIT → one ChangeBatch, position = the commit's end LSN
 *     ack(position) → standby status update: PostgreSQL may recycle WAL up to there
 *
 * No gap and no overlap: the snapshot sees exactly the transactions committed before the slot's
 * consistent point, and streaming starts at it. The position is acknowledged only when the engine
 * says the batch is in Redis; until then PostgreSQL keeps the WAL and resends it after a crash.
 * When idle (everything handed out is acknowledged and no transaction is open), keepalives advance
 * the slot past WAL of unrelated tables, so an idle slot does not hold WAL forever.
 */
import pg from 'pg';
import {
  UNAVAILABLE,
  type Change,
  type ChangeBatch,
  type ChangeRow,
  type ChangeSource,
  type LogicalMessage,
  type Row,
  type SchemaChange,
  type SourcePosition,
} from '../change.ts';
import { BatchQueue } from '../batch-queue.ts';
import { ReplicationError } from '../errors.ts';
import { decodePgText, PG_TYPE_OIDS, type ColumnType, type Value } from '../../core/values.ts';
import type { TableRequirement } from '../source-options.ts';
import { checkSourceTables, shapeChanges, splitTableName, type TableShape } from './catalog.ts';
import {
  decodeReplicationFrame,
  encodeStandbyStatus,
  formatLsn,
  parseLsn,
  PG_EPOCH_MICROS,
  type PgOutputMessage,
  type RelationMessage,
  type Tuple,
} from './pgoutput-decoder.ts';

export interface PostgresSourceConfig {
  readonly url: string;
  readonly slot: string;
  readonly publication: string;
  readonly tables: readonly TableRequirement[];
  /** Rows per snapshot chunk. */
  readonly snapshotChunkRows?: number;
  /** Changes per part of a transaction too large for one batch. */
  readonly partChanges?: number;
  readonly onProgress?: (progress: SnapshotProgress) => void;
  /**
   * A backfill's slot: created TEMPORARY (PostgreSQL drops it with the connection), never taken
   * over or dropped by name, never acknowledged past what it streamed.
   */
  readonly temporary?: boolean;
  /** The stream its positions name (a backfill's are the main slot's: the engine compares them). */
  readonly stream?: string;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

export interface SnapshotProgress {
  readonly table: string;
  readonly rows: number;
  /** PostgreSQL's estimate of the table's rows (pg_class.reltuples). */
  readonly estimatedRows: number;
  readonly done: boolean;
}

/** Every connection of ours speaks ISO dates in UTC and full float precision: values.ts relies on it. */
const SESSION_OPTIONS = '-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=iso_8601';
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/** A checkpoint token: the LSN as 20 zero-padded decimal digits, so string order is WAL order. */
export function lsnToken(lsn: bigint): string {
  return lsn.toString().padStart(20, '0');
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteTable(name: string): string {
  return splitTableName(name).map(quoteIdent).join('.');
}

export class PostgresSource implements ChangeSource {
  readonly delivery = 'exactly-ordered' as const;
  readonly config: PostgresSourceConfig;
  readonly stream: string;
  private replication: pg.Client | null = null;
  private control: pg.Client | null = null;
  private closed = false;
  /** The last position handed to the engine, and the last one it acknowledged. */
  private handedOut = 0n;
  private acknowledged = 0n;
  private inTransaction = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private readonly partChanges: number;

  constructor(config: PostgresSourceConfig) {
    this.config = config;
    this.partChanges = config.partChanges ?? 2000;
    this.stream = config.stream ?? `pg:${config.slot}`;
  }

  /**
   * Why streaming cannot resume from `position`, or null. PostgreSQL starts a slot no earlier
   * than its confirmed position, whatever we ask for: a checkpoint behind it means Redis lost
   * steps already acknowledged, and streaming from there would silently skip them.
   */
  async resumeProblem(position: SourcePosition): Promise<string | null> {
    const token = position.find((p) => p.stream === this.stream)?.token;
    if (token === undefined) return `the stored checkpoint is not for replication slot '${this.config.slot}'`;
    const client = await this.connectControl();
    const slot = await client.query<{ confirmed: string | null; wal_status: string | null }>(
      `SELECT confirmed_flush_lsn::text AS confirmed, wal_status FROM pg_replication_slots WHERE slot_name = $1`,
      [this.config.slot],
    );
    const row = slot.rows[0];
    if (!row) return `replication slot '${this.config.slot}' no longer exists (dropped, or the database was restored)`;
    if (row.wal_status === 'lost') return `replication slot '${this.config.slot}' lost WAL it needed (max_slot_wal_keep_size)`;
    if (row.confirmed !== null && parseLsn(row.confirmed) > BigInt(token)) {
      return `PostgreSQL's slot '${this.config.slot}' was acknowledged up to ${row.confirmed}, past the checkpoint Redis holds (${formatLsn(BigInt(token))}): Redis lost acknowledged steps, which PostgreSQL will not send again`;
    }
    return null;
  }

  async *start(resumeFrom: SourcePosition | null): AsyncGenerator<ChangeBatch> {
    const control = await this.connectControl();
    const shapes = await checkSourceTables(control, this.config.tables);
    await this.ensurePublication(control);

    const replication = new pg.Client({ connectionString: this.config.url, replication: 'database', options: SESSION_OPTIONS } as pg.ClientConfig);
    replication.on('error', () => undefined); // surfaced through the stream below
    await replication.connect();
    this.replication = replication;

    const temporary = this.config.temporary === true;
    if (!temporary) await this.takeSlotOver(control);
    let startLsn: bigint;
    const resumeToken = resumeFrom?.find((p) => p.stream === this.stream)?.token;
    if (resumeToken === undefined) {
      if (!temporary) await this.dropSlotIfExists(control);
      const created = await replication.query(`CREATE_REPLICATION_SLOT ${quoteIdent(this.config.slot)}${temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput EXPORT_SNAPSHOT`);
      const row = created.rows[0] as { consistent_point: string; snapshot_name: string };
      startLsn = parseLsn(row.consistent_point);
      this.config.log?.('info', temporary ? 'created a temporary replication slot; backfilling from its snapshot' : 'created replication slot; taking the initial snapshot', {
        slot: this.config.slot,
        consistentPoint: row.consistent_point,
        ...(temporary ? { tables: this.config.tables.map((t) => t.name) } : {}),
      });
      yield* this.snapshot(row.snapshot_name, startLsn);
    } else {
      startLsn = BigInt(resumeToken);
      this.config.log?.('info', 'resuming replication', { slot: this.config.slot, lsn: formatLsn(startLsn) });
    }
    this.handedOut = this.acknowledged = startLsn;
    yield* this.streamChanges(replication, startLsn, shapes);
  }

  /**
   * Backfill `tables` beside the running stream: a temporary slot's exported snapshot, then that
   * slot's stream. Its positions are LSNs of the same server, so the engine compares them with
   * this source's. The slot is gone when the backfill source closes (or its process dies).
   */
  backfill(tables: readonly string[], onProgress?: (progress: SnapshotProgress) => void): PostgresSource {
    const wanted = new Set(tables);
    const own = this.config.onProgress;
    return new PostgresSource({
      ...this.config,
      slot: `${this.config.slot}_backfill_${process.pid}_${Date.now().toString(36)}`.slice(0, 63),
      tables: this.config.tables.filter((t) => wanted.has(t.name)),
      temporary: true,
      stream: this.stream,
      onProgress: (p) => {
        own?.(p);
        onProgress?.(p);
      },
    });
  }

  readsStream(stream: string): boolean {
    return stream === this.stream;
  }

  async ack(position: SourcePosition): Promise<void> {
    const token = position.find((p) => p.stream === this.stream)?.token;
    if (token === undefined) return;
    const lsn = BigInt(token);
    if (lsn > this.acknowledged) this.acknowledged = lsn;
    this.sendStatus(this.acknowledged);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    const clients = [this.replication, this.control];
    this.replication = this.control = null;
    await Promise.all(clients.map((c) => c?.end().catch(() => undefined)));
  }

  private async connectControl(): Promise<pg.Client> {
    if (this.control) return this.control;
    const client = new pg.Client({ connectionString: this.config.url, options: SESSION_OPTIONS });
    client.on('error', () => undefined);
    await client.connect();
    this.control = client;
    return client;
  }

  private async ensurePublication(client: pg.Client): Promise<void> {
    const { publication } = this.config;
    const exists = await client.query<{ puballtables: boolean }>('SELECT puballtables FROM pg_publication WHERE pubname = $1', [publication]);
    const wanted = this.config.tables.map((t) => t.name);
    if (exists.rowCount === 0) {
      await client.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${wanted.map(quoteTable).join(', ')}`);
      return;
    }
    if (exists.rows[0]!.puballtables) return;
    const present = await client.query<{ name: string }>(
      `SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1`,
      [publication],
    );
    const have = new Set(present.rows.map((r) => r.name));
    const missing = wanted.filter((t) => !have.has(t));
    if (missing.length > 0) {
      await client.query(`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${missing.map(quoteTable).join(', ')}`);
    }
  }

  /**
   * The engine starts a source only while it holds the deployment's writer lease, so a connection
   * still streaming from our slot belongs to a writer that lost it (paused past its lease, cut
   * off): end it, instead of waiting up to wal_sender_timeout for PostgreSQL to notice.
   */
  private async takeSlotOver(client: pg.Client): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const slot = await client.query<{ active_pid: number | null }>('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [this.config.slot]);
      const pid = slot.rows[0]?.active_pid ?? null;
      if (pid === null) return;
      if (attempt === 0) {
        this.config.log?.('warn', 'the replication slot is held by another connection (a writer that lost its lease); ending it', {
          slot: this.config.slot,
          pid,
        });
      }
      await client.query('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new ReplicationError(`Replication slot '${this.config.slot}' stays in use by another connection; is another program using this slot name?`, { retriable: true });
  }

  private async dropSlotIfExists(client: pg.Client): Promise<void> {
    const slot = await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [this.config.slot]);
    if (slot.rowCount === 0) return;
    if (slot.rows[0]!.active) {
      throw new ReplicationError(
        `Replication slot '${this.config.slot}' is in use by another process; stop the other cdc-views instance (or choose another slot name)`,
        { retriable: true },
      );
    }
    this.config.log?.('warn', 'dropping replication slot without stored views; the views are rebuilt from a fresh snapshot', {
      slot: this.config.slot,
    });
    await client.query('SELECT pg_drop_replication_slot($1)', [this.config.slot]);
  }

  /** Read every declared table at the exported snapshot, in chunks of op 'r' changes. */
  private async *snapshot(snapshotName: string, consistentPoint: bigint): AsyncGenerator<ChangeBatch> {
    const client = new pg.Client({ connectionString: this.config.url, options: SESSION_OPTIONS, types: TEXT_TYPES });
    client.on('error', () => undefined);
    await client.connect();
    const chunkRows = this.config.snapshotChunkRows ?? 5000;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
      // Smallest tables first: a join's other side is then indexed before the rows that join it
      // arrive, so each snapshot row joins with the few rows of a small table instead of a
      // product's every order line arriving at once when the products come last.
      const sizes = new Map<string, { bytes: number; estimatedRows: number }>();
      for (const table of this.config.tables) {
        const [schema, name] = splitTableName(table.name);
        const { rows } = await client.query<{ reltuples: string; bytes: string }>(
          `SELECT c.reltuples, pg_relation_size(c.oid) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
          [schema, name],
        );
        sizes.set(table.name, { bytes: Number(rows[0]?.bytes ?? 0), estimatedRows: Math.max(0, Math.round(Number(rows[0]?.reltuples ?? 0))) });
      }
      const bySize = [...this.config.tables].sort((a, b) => sizes.get(a.name)!.bytes - sizes.get(b.name)!.bytes);
      for (const table of bySize) {
        const columns = Object.keys(table.columns);
        const types = columns.map((c) => table.columns[c]!.type);
        const { estimatedRows } = sizes.get(table.name)!;
        await client.query(`DECLARE snapshot_cursor NO SCROLL CURSOR FOR SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table.name)}`);
        let rows = 0;
        for (;;) {
          const chunk = await client.query<string[]>({ text: `FETCH ${chunkRows} FROM snapshot_cursor`, rowMode: 'array' });
          if (chunk.rows.length === 0) break;
          rows += chunk.rows.length;
          const changes = chunk.rows.map((values) => this.snapshotChange(table, columns, types, values));
          this.config.onProgress?.({ table: table.name, rows, estimatedRows, done: false });
          yield { kind: 'snapshot', changes, position: [] };
        }
        await client.query('CLOSE snapshot_cursor');
        this.config.onProgress?.({ table: table.name, rows, estimatedRows, done: true });
      }
      await client.query('COMMIT');
    } finally {
      await client.end().catch(() => undefined);
    }
    // The snapshot is complete only with this batch: its position marks the views as streamable.
    yield { kind: 'snapshot', changes: [], position: [{ stream: this.stream, token: lsnToken(consistentPoint) }], live: true };
  }

  private snapshotChange(table: TableRequirement, columns: string[], types: ColumnType[], values: (string | null)[]): Change {
    const row: Record<string, Value> = {};
    for (let i = 0; i < columns.length; i++) {
      const text = values[i];
      row[columns[i]!] = text === null || text === undefined ? null : decodePgText(types[i], text);
    }
    return {
      table: table.name,
      op: 'r',
      before: null,
      after: row,
      key: pick(row, table.key),
      source: { connector: 'postgresql', name: this.config.slot, db: '', snapshot: 'true' },
    };
  }

  /**
   * START_REPLICATION, then turn the frames into one ChangeBatch per transaction — or, for a
   * transaction larger than `partChanges`, into parts of exactly that many changes (a replay cuts
   * them the same way), so memory stays bounded whatever one statement touches.
   */
  private async *streamChanges(replication: pg.Client, startLsn: bigint, shapes: Map<string, TableShape>): AsyncGenerator<ChangeBatch> {
    const connection = (replication as unknown as { connection: ReplicationConnection }).connection;
    const queue = new BatchQueue(() => connection.stream.pause(), () => connection.stream.resume(), 256, 4 * this.partChanges);
    const relations = new Map<number, DecodedRelation>();
    const byOid = new Map([...shapes.values()].map((shape) => [shape.oid, shape]));
    const tables = new Map(this.config.tables.map((t) => [t.name, t]));
    // A table is followed by its oid: a rename changes its name, not what it is.
    const declaredByOid = new Map([...shapes.values()].map((shape) => [shape.oid, tables.get(shape.name)!]));
    let current: {
      xid: number;
      commitLsn: bigint;
      commitTimeUs: bigint;
      changes: Change[];
      messages: LogicalMessage[];
      parts: number;
      schemaChanges: SchemaChange[];
    } | null = null;
    let lastCommitEnd: bigint | null = null;
    /** Schema changes seen outside a transaction wait for the next batch. */
    let looseSchemaChanges: SchemaChange[] = [];

    const onRelation = (message: RelationMessage): void => {
      const known = byOid.get(message.oid);
      const requirement = declaredByOid.get(message.oid) ?? tables.get(`${message.schema}.${message.name}`);
      relations.set(message.oid, decodeRelation(message, requirement));
      if (!known || !requirement) return;
      const now: TableShape = {
        oid: message.oid,
        name: `${message.schema}.${message.name}`,
        replicaIdentity: message.replicaIdentity,
        columns: new Map(message.columns.map((c) => [c.name, { typeOid: c.typeOid, typeModifier: c.typeModifier }])),
      };
      const changes = shapeChanges(known, now, requirement);
      byOid.set(message.oid, now);
      if (changes.length === 0) return;
      this.config.log?.('warn', 'a source table changed shape', { table: requirement.name, changes });
      if (current) current.schemaChanges.push(...changes);
      else looseSchemaChanges.push(...changes);
    };

    /** Hand the open transaction's changes out: the whole transaction, or its next part. */
    const emit = (final: boolean, endLsn: bigint | null): void => {
      const t = current!;
      const schemaChanges = [...looseSchemaChanges, ...t.schemaChanges];
      looseSchemaChanges = [];
      t.schemaChanges = [];
      const probe = [{ stream: this.stream, token: lsnToken(t.commitLsn) }];
      queue.push({
        kind: 'transaction',
        changes: t.changes,
        position: endLsn === null ? [] : [{ stream: this.stream, token: lsnToken(endLsn) }],
        commitTimeUs: Number(t.commitTimeUs + PG_EPOCH_MICROS),
        messages: final ? t.messages : [],
        ...(t.parts > 0 || !final ? { part: { txn: lsnToken(t.commitLsn), index: t.parts, final, probe } } : {}),
        ...(schemaChanges.length > 0 ? { schemaChanges } : {}),
      });
      t.parts++;
      t.changes = [];
    };

    connection.on('copyData', ({ chunk }: { chunk: Buffer }) => {
      try {
        const frame = decodeReplicationFrame(chunk);
        if (frame.kind === 'keepalive') {
          // Idle: everything handed out is durable. Hand the server's position out as an empty
          // batch, so the slot moves past unrelated WAL only once Redis holds that position too
          // (a checkpoint behind the slot would otherwise look like lost steps after a restart).
          if (!this.inTransaction && queue.isEmpty() && this.acknowledged >= this.handedOut && frame.walEnd > this.handedOut) {
            this.handedOut = frame.walEnd;
            queue.push({ kind: 'transaction', changes: [], position: [{ stream: this.stream, token: lsnToken(frame.walEnd) }] });
          }
          if (frame.replyRequested) this.sendStatus(this.acknowledged);
          return;
        }
        const message = frame.message;
        switch (message.tag) {
          case 'begin':
            this.inTransaction = true;
            current = { xid: message.xid, commitLsn: message.finalLsn, commitTimeUs: message.commitTimeUs, changes: [], messages: [], parts: 0, schemaChanges: [] };
            break;
          case 'relation':
            onRelation(message);
            break;
          case 'insert':
          case 'update':
          case 'delete':
          case 'truncate':
            if (!current) throw new ReplicationError(`decode(pgoutput): ${message.tag} outside a transaction at ${formatLsn(frame.dataStart)}`);
            current.changes.push(...this.toChanges(message, relations, frame.dataStart, lastCommitEnd, current.xid, current.commitTimeUs));
            if (current.changes.length >= this.partChanges) emit(false, null);
            break;
          case 'message':
            if (current && message.transactional) current.messages.push({ prefix: message.prefix, content: message.content, lsn: message.lsn.toString() });
            break;
          case 'commit': {
            if (!current) break;
            emit(true, message.endLsn);
            lastCommitEnd = message.endLsn;
            this.handedOut = message.endLsn;
            current = null;
            this.inTransaction = false;
            break;
          }
          default:
            break;
        }
      } catch (error) {
        queue.fail(error);
      }
    });
    connection.once('end', () => queue.fail(new ReplicationError('The replication connection closed', { retriable: true })));
    replication.on('error', (error: Error) => queue.fail(new ReplicationError(`Replication failed: ${error.message}`, { retriable: true, cause: error })));

    const publication = this.config.publication.replace(/'/g, "''");
    replication
      .query(
        `START_REPLICATION SLOT ${quoteIdent(this.config.slot)} LOGICAL ${formatLsn(startLsn)} (proto_version '1', publication_names '${publication}', messages 'true')`,
      )
      .catch((error: unknown) => queue.fail(new ReplicationError(`START_REPLICATION failed: ${String(error)}`, { retriable: true, cause: error })));

    // wal_sender_timeout is 60 s by default: report our position well within it.
    this.statusTimer = setInterval(() => this.sendStatus(this.acknowledged), 10_000);
    try {
      yield* queue.batches(() => this.closed);
    } finally {
      if (this.statusTimer) clearInterval(this.statusTimer);
    }
  }

  private toChanges(
    message: Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' | 'truncate' }>,
    relations: Map<number, DecodedRelation>,
    lsn: bigint,
    lastCommitEnd: bigint | null,
    xid: number,
    commitTimeUs: bigint,
  ): Change[] {
    const source = {
      connector: 'postgresql' as const,
      name: this.config.slot,
      db: '',
      txId: String(xid),
      lsn: lsn.toString(),
      sequence: [lastCommitEnd === null ? null : lastCommitEnd.toString(), lsn.toString()] as const,
      tsUs: Number(commitTimeUs + PG_EPOCH_MICROS),
      snapshot: false as const,
    };
    if (message.tag === 'truncate') {
      return message.relations.flatMap((oid) => {
        const rel = relations.get(oid);
        return rel?.requirement ? [{ table: rel.table, op: 't' as const, before: null, after: null, key: null, source }] : [];
      });
    }
    const rel = relations.get(message.relation);
    if (!rel) throw new ReplicationError(`decode(pgoutput): change for unknown relation ${message.relation} at ${formatLsn(lsn)}`);
    // A renamed table's changes keep its declared name: the views decide what a rename means.
    if (!rel.requirement) return []; // a published table no view declares
    const key = rel.requirement.key;
    switch (message.tag) {
      case 'insert': {
        const after = rel.decode(message.newTuple, false);
        return [{ table: rel.table, op: 'c', before: null, after, key: pick(after, key), source }];
      }
      case 'update': {
        const before = message.oldTuple ? rel.decode(message.oldTuple, message.oldKind === 'K') : null;
        const after = rel.decode(message.newTuple, false);
        return [{ table: rel.table, op: 'u', before, after, key: pick(after, key), source }];
      }
      case 'delete': {
        const before = rel.decode(message.oldTuple, message.oldKind === 'K');
        return [{ table: rel.table, op: 'd', before, after: null, key: pick(before, key), source }];
      }
    }
  }

  private sendStatus(lsn: bigint): void {
    const connection = (this.replication as unknown as { connection?: ReplicationConnection } | null)?.connection;
    if (!connection || this.closed) return;
    connection.sendCopyFromChunk(encodeStandbyStatus(lsn, BigInt(Date.now()) * 1000n));
  }
}

/** The part of pg's internal Connection the replication protocol needs. */
interface ReplicationConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
  once(event: 'end', listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

interface DecodedRelation {
  readonly table: string;
  readonly requirement: TableRequirement | undefined;
  /** Tuple → row; a key-only old tuple ('K') keeps only the key columns. */
  decode(tuple: Tuple, keyOnly: boolean): ChangeRow;
}

function decodeRelation(message: RelationMessage, requirement: TableRequirement | undefined): DecodedRelation {
  const table = requirement?.name ?? `${message.schema}.${message.name}`;
  const types = message.columns.map((c) => (requirement?.columns[c.name]?.type ?? PG_TYPE_OIDS[c.typeOid]) as ColumnType | undefined);
  const names = message.columns.map((c) => c.name);
  const keyColumns = new Set(requirement?.key ?? message.columns.filter((c) => c.isKey).map((c) => c.name));
  return {
    table,
    requirement,
    decode(tuple, keyOnly) {
      const row: Record<string, Value | typeof UNAVAILABLE> = {};
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        if (keyOnly && !keyColumns.has(name)) continue;
        const text = tuple[i];
        row[name] = text === undefined ? UNAVAILABLE : text === null ? null : decodePgText(types[i], text);
      }
      return row;
    },
  };
}

function pick(row: ChangeRow, columns: readonly string[]): Row {
  const key: Record<string, Value> = {};
  for (const c of columns) {
    const v = row[c];
    key[c] = v === undefined || v === UNAVAILABLE ? null : v;
  }
  return key;
}
