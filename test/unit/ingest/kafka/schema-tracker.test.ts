/**
 * Shape changes from Debezium's schemas: the row schema the decoder exposes (compiled once per
 * schema text), and the tracker's comparisons — with the declaration first, then schema to schema.
 * The schemas are real: the records captured from Debezium 3.6.1 (test/fixtures/debezium-captured/),
 * edited the way an ALTER TABLE changes them.
 */
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../ingest/change.ts';
import {
  createDebeziumDecoder,
  type DecodedChange,
  type KafkaRecordInput,
  type RowSchema,
} from '../../../../ingest/kafka/debezium/index.ts';
import { orderOf } from '../../../../ingest/kafka/kafka-source.ts';
import { compareRowSchemas, SchemaTracker } from '../../../../ingest/kafka/schema-tracker.ts';
import type { TableRequirement } from '../../../../ingest/source-options.ts';
import type { ColumnType } from '../../../../core/values.ts';
import { capturedEvents, fixtureEvents, recordFromCaptured, recordFromFixture } from './debezium-fixtures.ts';

/** The captured PostgreSQL records of public.items: the snapshot read of row 1, then c, c, u, d. */
const captured = capturedEvents('pg-3.6.1-txn.records.jsonl')
  .map(recordFromCaptured)
  .filter((r) => r.topic.endsWith('.public.items') && r.value !== null);
const topicPrefix = captured[0]!.topic.split('.')[0]!;

/** `public.items (id int PRIMARY KEY, name text, price numeric(10,2), qty bigint, updated_at timestamptz)`, declared. */
function items(
  columns: Record<string, ColumnType> = {
    id: 'int4',
    name: 'text',
    price: 'numeric',
    qty: 'int8',
    updated_at: 'timestamptz',
  },
): TableRequirement {
  return {
    name: 'public.items',
    columns: Object.fromEntries(Object.entries(columns).map(([c, type]) => [c, { type, nullable: true }])),
    key: ['id'],
    needsOldRowFor: [],
  };
}

/** A captured record whose value text went through `edit` (an ALTER TABLE, as Debezium would then send it). */
function altered(record: KafkaRecordInput, edit: (value: string) => string, offset = 100): KafkaRecordInput {
  const value = edit(record.value!.toString());
  return { ...record, offset: String(offset), value: Buffer.from(value) };
}

const decoder = () => createDebeziumDecoder({ topicPrefix });
function decodeChange(d: ReturnType<typeof decoder>, record: KafkaRecordInput): DecodedChange {
  const decoded = d.decode(record);
  if (decoded.kind !== 'change') throw new Error(`expected a change, got ${decoded.kind}`);
  return decoded;
}
const rowSchemaOf = (record: KafkaRecordInput): RowSchema => decodeChange(decoder(), record).rowSchema!;

/** Edits of the items row schema (in both `before` and `after`). */
const scale3 = (v: string): string => v.replaceAll('"scale":"2"', '"scale":"3"');
const idInt64 = (v: string): string =>
  v.replaceAll(
    '{"type":"int32","optional":false,"field":"id"}',
    '{"type":"int64","optional":false,"field":"id"}',
  );
const dropName = (v: string): string =>
  v.replaceAll('{"type":"string","optional":false,"field":"name"},', '');
const addNote = (v: string): string =>
  v.replaceAll(
    '{"type":"int64","optional":true,"field":"qty"}',
    '{"type":"int64","optional":true,"field":"qty"},{"type":"string","optional":true,"field":"note"}',
  );

/** A change of public.items at a streamed position (only the order token matters to the tracker). */
const at = (lsn: number, snapshot = false): Change => ({
  table: 'public.items',
  op: 'u',
  before: null,
  after: {},
  key: { id: 1 },
  source: {
    connector: 'postgresql',
    name: topicPrefix,
    db: 'db',
    lsn: String(lsn),
    snapshot: snapshot ? 'true' : false,
  },
});

describe('DecodedChange.rowSchema', () => {
  it('describes each column as Debezium declares it, with the declared types it decodes as', () => {
    const schema = rowSchemaOf(captured[0]!);
    expect(Object.fromEntries([...schema.columns].map(([c, t]) => [c, t.type]))).toEqual({
      id: 'int32',
      name: 'string',
      price: 'org.apache.kafka.connect.data.Decimal(scale=2)',
      qty: 'int64',
      updated_at: 'io.debezium.time.ZonedTimestamp',
    });
    expect(Object.fromEntries([...schema.columns].map(([c, t]) => [c, t.decodesAs]))).toEqual({
      id: ['int2', 'int4'],
      // A plain string is passed through as sent: any declared type whose values are strings.
      name: [
        'text',
        'varchar',
        'bpchar',
        'uuid',
        'json',
        'jsonb',
        'numeric',
        'int8',
        'date',
        'time',
        'timestamp',
        'timestamptz',
        'bytea',
      ],
      // A declared text takes any type that decodes to a string (as on the PostgreSQL path).
      price: ['numeric', 'text'],
      qty: ['int8', 'text'],
      updated_at: ['timestamptz', 'text'],
    });
  });

  it('is one object per distinct schema, shared by every record carrying it, with an id that follows the columns', () => {
    const d = decoder();
    const schemas = captured.map((r) => decodeChange(d, r).rowSchema);
    expect(new Set(schemas).size).toBe(1);
    const scaled = decodeChange(d, altered(captured[1]!, scale3)).rowSchema!;
    expect(scaled).not.toBe(schemas[0]);
    expect(scaled.id).not.toBe(schemas[0]!.id);
    // Another envelope (the source block changed) around the same row: another object, the same id.
    const otherSource = decodeChange(
      d,
      altered(captured[1]!, (v) => v.replace('{"type":"string","optional":true,"field":"origin"},', '')),
    ).rowSchema!;
    expect(otherSource).not.toBe(schemas[0]);
    expect(otherSource.id).toBe(schemas[0]!.id);
    // A fresh decoder compiles the same text to the same id: ids are stable across processes.
    expect(rowSchemaOf(captured[0]!).id).toBe(schemas[0]!.id);
  });

  it('MariaDB (captured, Debezium 3.5.0): the same table typed for the same declaration, which it fits', () => {
    const records = capturedEvents('mariadb-3.5.0-txn.records.jsonl').map(recordFromCaptured);
    const d = createDebeziumDecoder({ topicPrefix: records[0]!.topic.split('.')[0]! });
    const first = records.map((r) => d.decode(r)).find((r): r is DecodedChange => r.kind === 'change')!;
    expect(Object.fromEntries([...first.rowSchema!.columns].map(([c, t]) => [c, t.type]))).toEqual(
      Object.fromEntries([...rowSchemaOf(captured[0]!).columns].map(([c, t]) => [c, t.type])),
    );
    expect(compareRowSchemas(null, first.rowSchema!, { ...items(), name: first.change.table }, true)).toEqual(
      [],
    );
  });

  it('describes the logical types of the documented PostgreSQL create event', () => {
    const [event] = fixtureEvents('pg-docs-create.value.schema-payload.json');
    const d = createDebeziumDecoder({ topicPrefix: 'PostgreSQL_server' });
    const decoded = d.decode({
      topic: 'PostgreSQL_server.inventory.customers',
      partition: 0,
      offset: '0',
      key: null,
      value: event!,
    });
    expect(
      decoded.kind === 'change' &&
        Object.fromEntries([...decoded.rowSchema!.columns].map(([c, t]) => [c, t.type])),
    ).toEqual({
      id: 'int32',
      first_name: 'string',
      last_name: 'string',
      email: 'string',
    });
  });

  it('is absent without schemas (schemas.enable=false): there is nothing to compare', () => {
    const [line] = fixtureEvents('constructed/unwrap-rewrite.records.jsonl');
    const decoded = createDebeziumDecoder({ topicPrefix: 'app' }).decode(recordFromFixture(line!));
    expect(decoded.kind).toBe('change');
    expect(decoded.kind === 'change' && 'rowSchema' in decoded).toBe(false);
  });
});

describe('compareRowSchemas', () => {
  const base = rowSchemaOf(captured[0]!);

  it('finds nothing between a schema and itself, or when the first schema fits the declaration', () => {
    expect(compareRowSchemas(base, base, items(), false)).toEqual([]);
    expect(compareRowSchemas(null, base, items(), true)).toEqual([]);
  });

  it('a Decimal scale changed on a numeric column: typeChanged that still fits the declaration', () => {
    expect(compareRowSchemas(base, rowSchemaOf(altered(captured[0]!, scale3)), items(), false)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'price',
        from: 'org.apache.kafka.connect.data.Decimal(scale=2)',
        to: 'org.apache.kafka.connect.data.Decimal(scale=3)',
        fitsDeclaration: true,
      },
    ]);
  });

  it('int32 → int64 on an int4 column (ALTER … TYPE int8): typeChanged that no longer fits', () => {
    expect(compareRowSchemas(base, rowSchemaOf(altered(captured[0]!, idInt64)), items(), false)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'id',
        from: 'int32',
        to: 'int64',
        fitsDeclaration: false,
      },
    ]);
  });

  it('a declared column dropped, a column added', () => {
    expect(
      compareRowSchemas(
        base,
        rowSchemaOf(altered(captured[0]!, (v) => addNote(dropName(v)))),
        items(),
        false,
      ),
    ).toEqual([
      { kind: 'columnsDropped', table: 'public.items', columns: ['name'] },
      { kind: 'columnsAdded', table: 'public.items', columns: ['note'] },
    ]);
    // A column nobody declared comes and goes without a columnsDropped.
    const withNote = rowSchemaOf(altered(captured[0]!, addNote));
    expect(compareRowSchemas(withNote, base, items(), false)).toEqual([]);
  });

  it('a numeric sent as a string (decimal.handling.mode=string) fits its declaration; sent as a double it does not', () => {
    const decimalField =
      '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"}';
    const asString = altered(captured[0]!, (v) =>
      v
        .replaceAll(decimalField, '{"type":"string","optional":true,"field":"price"}')
        .replace('"price":"AJY="', '"price":"1.50"'),
    );
    const asDouble = altered(captured[0]!, (v) =>
      v
        .replaceAll(decimalField, '{"type":"double","optional":true,"field":"price"}')
        .replace('"price":"AJY="', '"price":1.5'),
    );
    expect(decodeChange(decoder(), asString).change.after?.['price']).toBe('1.50');
    expect(compareRowSchemas(null, rowSchemaOf(asString), items(), true)).toEqual([]);
    expect(compareRowSchemas(null, rowSchemaOf(asDouble), items(), true)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'price',
        from: 'numeric (declared)',
        to: 'double',
        fitsDeclaration: false,
      },
    ]);
  });

  it('the first schema against the declaration: a declared column it lacks, a type that does not decode as declared', () => {
    expect(
      compareRowSchemas(
        null,
        base,
        items({ id: 'int4', qty: 'int4', price: 'numeric', gone: 'text', updated_at: 'timestamp' }),
        true,
      ),
    ).toEqual([
      { kind: 'columnsDropped', table: 'public.items', columns: ['gone'] },
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'qty',
        from: 'int4 (declared)',
        to: 'int64',
        fitsDeclaration: false,
      },
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'updated_at',
        from: 'timestamp (declared)',
        to: 'io.debezium.time.ZonedTimestamp',
        fitsDeclaration: false,
      },
    ]);
  });
});

describe('SchemaTracker', () => {
  const base = rowSchemaOf(captured[0]!);
  const scaled = rowSchemaOf(altered(captured[0]!, scale3));
  const wide = rowSchemaOf(altered(captured[0]!, idInt64));

  it('checks the first schema against the declaration, then reports each change of schema once', () => {
    const tracker = new SchemaTracker([items({ id: 'int4', qty: 'int4' })], orderOf);
    expect(tracker.observe(at(10), base)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'qty',
        from: 'int4 (declared)',
        to: 'int64',
        fitsDeclaration: false,
      },
    ]);
    expect(tracker.observe(at(11), base)).toEqual([]);
    expect(tracker.observe(at(12), wide)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'id',
        from: 'int32',
        to: 'int64',
        fitsDeclaration: false,
      },
    ]);
    expect(tracker.observe(at(13), wide)).toEqual([]);
  });

  it('ignores undeclared tables', () => {
    const tracker = new SchemaTracker([items()], orderOf);
    expect(tracker.observe({ ...at(10), table: 'public.other' }, wide)).toEqual([]);
  });

  it('a record sent again from before the change (older position, old schema) says nothing about the table now', () => {
    const tracker = new SchemaTracker([items()], orderOf);
    expect(tracker.observe(at(10), base)).toEqual([]);
    expect(tracker.observe(at(20), scaled)).toHaveLength(1);
    // Kafka Connect restarted: Debezium sends 15..20 again, 15 with the schema of before the ALTER.
    expect(tracker.observe(at(15), base)).toEqual([]);
    expect(tracker.observe(at(20), scaled)).toEqual([]);
    expect(tracker.observe(at(21), scaled)).toEqual([]);
    // An incremental snapshot read has no position to place it by; it is read from the table as it is now: compared.
    const incremental: Change = {
      ...at(0),
      source: { connector: 'postgresql', name: topicPrefix, db: 'db', snapshot: 'incremental' },
    };
    expect(tracker.observe(incremental, base)).toHaveLength(1);
  });

  it('after a restart, compares the first record with the last one applied before it (the baseline)', () => {
    const tracker = new SchemaTracker([items()], orderOf);
    tracker.baseline(at(10), base);
    tracker.baseline(at(11), wide); // only the first baseline counts
    expect(tracker.observe(at(12), scaled)).toEqual([
      {
        kind: 'typeChanged',
        table: 'public.items',
        column: 'price',
        from: 'org.apache.kafka.connect.data.Decimal(scale=2)',
        to: 'org.apache.kafka.connect.data.Decimal(scale=3)',
        fitsDeclaration: true,
      },
    ]);
    // Without a baseline, a change that still fits its declaration cannot be seen after a restart.
    expect(new SchemaTracker([items()], orderOf).observe(at(12), scaled)).toEqual([]);
  });

  it('a baseline equal to the first schema still has the first schema checked against the declaration', () => {
    const tracker = new SchemaTracker([items({ id: 'int4', gone: 'text' })], orderOf);
    tracker.baseline(at(10), base);
    expect(tracker.observe(at(11), base)).toEqual([
      { kind: 'columnsDropped', table: 'public.items', columns: ['gone'] },
    ]);
    expect(tracker.observe(at(12), base)).toEqual([]);
  });
});
