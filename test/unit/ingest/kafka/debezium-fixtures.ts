/**
 * Fixture access for the Debezium decoder tests: the shared fixture set (copied from
 * `../shared/fixtures/debezium/` into `test/fixtures/debezium/`) and the records captured from a real Debezium into
 * `test/fixtures/debezium-captured/`. Files are read as text and never through JSON.parse, which would
 * round `ts_ns` and other integers beyond 2^53.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'lossless-json';
import type { KafkaRecordInput } from '../../../../ingest/kafka/debezium/index.ts';

/** The shared fixture set, copied into the repo so a clone has it (test/fixtures/debezium/README.md). */
export const FIXTURES = new URL('../../../fixtures/debezium/', import.meta.url);
/** Where the shared set lives next to the repo on the project's machines, when it does. */
export const SHARED_FIXTURES = new URL('../../../../../shared/fixtures/debezium/', import.meta.url);
export const CAPTURED = new URL('../../../fixtures/debezium-captured/', import.meta.url);

export function fixtureText(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

/** Every fixture file (data files only), relative to FIXTURES, e.g. `constructed/heartbeat.record.json`. */
export function fixtureFiles(): string[] {
  const dir = fileURLToPath(FIXTURES);
  const top = readdirSync(dir).filter((name) => /\.jsonl?$/.test(name));
  const constructed = readdirSync(new URL('constructed/', FIXTURES)).map((name) => `constructed/${name}`);
  return [...top, ...constructed].filter((name) => /\.jsonl?$/.test(name)).sort();
}

/** The lines of a `.jsonl` file (one event each), or the whole text of a `.json` file. */
export function fixtureEvents(name: string): string[] {
  const text = fixtureText(name);
  return name.endsWith('.jsonl') ? text.split('\n').filter((line) => line.trim() !== '') : [text];
}

export function capturedEvents(name: string): string[] {
  const text = readFileSync(new URL(name, CAPTURED), 'utf8');
  return name.endsWith('.jsonl') ? text.split('\n').filter((line) => line.trim() !== '') : [text];
}

/**
 * A captured record line, `{"topic","partition","offset","timestamp","headers","key":<raw>,"value":<raw>}`,
 * as the Kafka record it was: key and value are the verbatim wire text (test/integration/kafka-stack.test.ts),
 * handed over as Buffers the way kafkajs hands them over.
 */
export function recordFromCaptured(line: string): KafkaRecordInput {
  const fields = parse(line) as {
    topic: string;
    partition: unknown;
    offset: unknown;
    headers: Record<string, string>;
  };
  const headers = rawJsonAfter(line, '"headers":');
  const key = rawJsonAfter(line, '"key":', headers.end);
  const value = rawJsonAfter(line, '"value":', key.end);
  return {
    topic: fields.topic,
    partition: Number(fields.partition),
    offset: String(fields.offset),
    key: key.text === 'null' ? null : Buffer.from(key.text),
    value: value.text === 'null' ? null : Buffer.from(value.text),
    headers: fields.headers,
  };
}

/** The JSON value text that follows `label` (searched from `from`), found by bracket matching. */
function rawJsonAfter(line: string, label: string, from = 0): { text: string; end: number } {
  const start = line.indexOf(label, from) + label.length;
  let depth = 0;
  let i = start;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      for (i++; line[i] !== '"'; i++) if (line[i] === '\\') i++;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if (c === '}' || c === ']') {
      if (depth === 0) break; // the record's own closing brace
      if (--depth === 0) {
        i++;
        break;
      }
    } else if (c === ',' && depth === 0) {
      break;
    }
  }
  return { text: line.slice(start, i), end: i };
}

export function capturedFiles(): string[] {
  const dir = fileURLToPath(CAPTURED);
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => /\.jsonl?$/.test(name))
        .sort()
    : [];
}

/** A Kafka record carrying `value` (a payload or schema+payload text) on `topic`. */
export function recordOf(
  topic: string,
  value: string | null,
  key: string | null = null,
  offset = 0,
  headers?: Record<string, string>,
): KafkaRecordInput {
  return {
    topic,
    partition: 0,
    offset: String(offset),
    key,
    value,
    ...(headers === undefined ? {} : { headers }),
  };
}

/**
 * A `.record(s).json(l)` fixture line, `{"topic","key","headers","value"}` with key and value as JSON
 * objects, as the Kafka record it describes (key and value re-serialised losslessly).
 */
export function recordFromFixture(line: string, offset = 0): KafkaRecordInput {
  const fixture = parse(line) as {
    topic: string;
    key: unknown;
    value: unknown;
    headers?: Record<string, string>;
  };
  return {
    topic: fixture.topic,
    partition: 0,
    offset: String(offset),
    key: fixture.key === null ? null : (stringify(fixture.key) ?? null),
    value: fixture.value === null ? null : (stringify(fixture.value) ?? null),
    ...(fixture.headers === undefined ? {} : { headers: fixture.headers }),
  };
}

/** `{"schema": <schema>, "payload": <payload text>}`: payload kept as text so big numbers stay exact. */
export function withSchema(schema: unknown, payloadText: string): string {
  return `{"schema":${JSON.stringify(schema)},"payload":${payloadText}}`;
}

/** A PostgreSQL Envelope schema whose before/after rows have `fields`. */
export function pgEnvelopeSchema(table: string, fields: readonly object[]): object {
  const row = { type: 'struct', fields, optional: true, name: `app.public.${table}.Value` };
  return {
    type: 'struct',
    name: `app.public.${table}.Envelope`,
    optional: false,
    fields: [
      { ...row, field: 'before' },
      { ...row, field: 'after' },
      {
        type: 'struct',
        optional: false,
        name: 'io.debezium.connector.postgresql.Source',
        field: 'source',
        fields: [
          { type: 'string', optional: false, field: 'version' },
          { type: 'string', optional: false, field: 'connector' },
          { type: 'string', optional: false, field: 'name' },
          { type: 'int64', optional: false, field: 'ts_ms' },
          { type: 'string', optional: true, name: 'io.debezium.data.Enum', version: 1, field: 'snapshot' },
          { type: 'string', optional: false, field: 'db' },
          { type: 'string', optional: true, field: 'sequence' },
          { type: 'string', optional: false, field: 'schema' },
          { type: 'string', optional: false, field: 'table' },
          { type: 'int64', optional: true, field: 'txId' },
          { type: 'int64', optional: true, field: 'lsn' },
        ],
      },
      { type: 'string', optional: false, field: 'op' },
      { type: 'int64', optional: true, field: 'ts_ms' },
    ],
  };
}

/** A PostgreSQL source block on table public.<table>, as JSON text (numbers exact). */
export function pgSourceJson(table: string, extra = ''): string {
  return (
    `{"version":"3.6.1.Final","connector":"postgresql","name":"app","ts_ms":1767225600000,"ts_us":1767225600000000,` +
    `"ts_ns":1767225600000000000,"snapshot":"false","db":"appdb","sequence":"[\\"35000100\\",\\"35000400\\"]",` +
    `"schema":"public","table":"${table}","txId":901,"lsn":35000400,"xmin":null${extra}}`
  );
}

/** An envelope payload on public.<table> with the given after-row text. */
export function pgPayload(table: string, afterText: string, op = 'c', sourceExtra = ''): string {
  return `{"before":null,"after":${afterText},"source":${pgSourceJson(table, sourceExtra)},"op":"${op}","ts_ms":1767225600040}`;
}
