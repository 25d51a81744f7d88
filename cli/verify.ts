/**
 * `cdc-views verify [view…]`: each live view against its SQL on the source database — the oracle
 * the test suite uses, run by an operator against production.
 *
 * The views keep moving while they are read, so a first difference is not yet a finding. The keys
 * that differ are checked again in a window: the view's version v0 and rows are read, then the SQL
 * rows, then a transactional logical message marks the database's position and the service's
 * checkpoint is awaited past it (the views then hold every change committed before), at version
 * v1. The database's rows were read at a moment inside that window, so a right view held them at
 * some version in [v0, v1]: the row read at v0, or one the changelog records for the key up to v1.
 * A key whose SQL row is none of those, a few windows in a row, is reported — with both rows — and
 * the command exits 1. (A key written continuously is never a false finding: every value it took
 * in the window is in the changelog.)
 */
import type pg from 'pg';
import { encodeRowKey } from '../core/encoding.ts';
import { decodePgText, type Value } from '../core/values.ts';
import { lsnToken } from '../ingest/pg/postgres-source.ts';
import type { CompiledView, Registry } from '../views/registry.ts';
import { changelogKey, checkpointKey, metaKey, rowsKey } from '../views/store/keys.ts';
import { currentVersion } from '../views/store/read.ts';
import { toRecord, type ViewStatus } from '../views/store/state.ts';
import type { RedisClient } from '../views/store/redis.ts';

export interface ViewVerdict {
  readonly view: string;
  readonly rows: number;
  /** Keys that still differed after catching up, with the row on each side (null: absent). */
  readonly differing: readonly {
    readonly key: string;
    readonly view: Record<string, unknown> | null;
    readonly sql: Record<string, unknown> | null;
  }[];
  /** Why the view was not compared: it is not live with this config's definition (building, stopped, another definition). */
  readonly unverified?: string;
}

export interface VerifyOptions {
  readonly registry: Registry;
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly db: pg.Client;
  /** The replication slot whose checkpoint says how far the views are (source.postgres). */
  readonly slot: string;
  /** Rounds of re-reading the differing keys (default 4). */
  readonly rounds?: number;
  readonly log?: (line: string) => void;
}

type Row = Record<string, Value>;

const keyOf = (view: CompiledView, row: Row): string =>
  JSON.stringify(view.keyFields.map((f) => row[f.name] ?? null));

/** A row as the view stores it (JSON), compared field by field in a fixed order. */
const canonical = (view: CompiledView, row: Row | null): string | null =>
  row === null ? null : JSON.stringify(view.fields.map((f) => row[f.name] ?? null));

async function sqlRows(
  db: pg.Client,
  view: CompiledView,
  keys?: readonly string[],
): Promise<Map<string, Row>> {
  let text = view.sql;
  const params: unknown[] = [];
  if (keys) {
    // Only these keys: the key columns as text, compared with the keys' JSON values as text.
    const columns = view.keyFields.map((f) => `v.${JSON.stringify(f.name)}::text`).join(', ');
    const tuples = keys.map((k) => {
      const values = JSON.parse(k) as Value[];
      return `(${values.map((value) => (params.push(value === null ? null : String(value)), `$${params.length}`)).join(', ')})`;
    });
    text = `SELECT * FROM (${view.sql}) v WHERE (${columns}) IN (${tuples.join(', ')})`;
  }
  const result = await db.query<Record<string, string | null>>(text, params);
  const rows = new Map<string, Row>();
  for (const r of result.rows) {
    const row: Row = {};
    for (const f of view.fields) {
      const value = r[f.name];
      row[f.name] = value === null || value === undefined ? null : decodePgText(f.type, value);
    }
    rows.set(keyOf(view, row), row);
  }
  return rows;
}

async function viewRows(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  keys?: readonly string[],
): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  const add = (stored: string | null): void => {
    if (stored === null) return;
    const row = JSON.parse(stored) as Row;
    rows.set(keyOf(view, row), row);
  };
  if (keys) {
    // The hash field of a row is the view's encoding of its key values (core/encoding.ts).
    const fields = keys.map((k) =>
      encodeRowKey(
        view.keyFields.map((f) => f.type),
        JSON.parse(k) as Value[],
      ),
    );
    const stored = await redis.sendCommand<(string | null)[]>([
      'HMGET',
      rowsKey(prefix, view.storage),
      ...fields,
    ]);
    for (const s of stored) add(s);
    return rows;
  }
  let cursor = '0';
  do {
    const [next, flat] = await redis.sendCommand<[string, string[]]>([
      'HSCAN',
      rowsKey(prefix, view.storage),
      cursor,
      'COUNT',
      '1000',
    ]);
    for (let i = 1; i < flat.length; i += 2) add(flat[i]!);
    cursor = next;
  } while (cursor !== '0');
  return rows;
}

function differences(
  view: CompiledView,
  a: Map<string, Row>,
  b: Map<string, Row>,
  keys: Iterable<string>,
): string[] {
  const out: string[] = [];
  for (const k of keys)
    if (canonical(view, a.get(k) ?? null) !== canonical(view, b.get(k) ?? null)) out.push(k);
  return out;
}

/** Waits until the views include every change committed in the database so far (or the timeout passes). */
async function catchUp(options: VerifyOptions, timeoutMs = 30_000): Promise<boolean> {
  const { db, redis, prefix, slot } = options;
  const { rows } = await db.query<{ lsn: string }>(
    `SELECT pg_logical_emit_message(true, 'cdc-views-verify', 'barrier')::text AS lsn`,
  );
  const [hi, lo] = rows[0]!.lsn.split('/');
  const target = lsnToken((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`));
  for (
    const deadline = Date.now() + timeoutMs;
    Date.now() < deadline;
    await new Promise((r) => setTimeout(r, 100))
  ) {
    const stored = await redis.sendCommand<string | null>(['HGET', checkpointKey(prefix), `pg:${slot}`]);
    if (stored !== null && stored >= target) return true;
  }
  return false;
}

/**
 * The rows the changelog records for these keys after version v0 (null for a delete), oldest first;
 * every key maps to nothing extra when the window holds a reset (the next round reads afresh).
 */
async function heldSince(
  options: VerifyOptions,
  view: CompiledView,
  v0: string,
  keys: readonly string[],
): Promise<Map<string, (Row | null)[]>> {
  const byField = new Map(
    keys.map((k) => [
      encodeRowKey(
        view.keyFields.map((f) => f.type),
        JSON.parse(k) as Value[],
      ),
      k,
    ]),
  );
  const held = new Map<string, (Row | null)[]>();
  let from = `(${v0}`;
  for (;;) {
    const entries = await options.redis.sendCommand<[string, string[]][]>([
      'XRANGE',
      changelogKey(options.prefix, view.name),
      from,
      '+',
      'COUNT',
      '1000',
    ]);
    for (const [id, fields] of entries) {
      const f = toRecord(fields);
      if (f['o'] === 'reset') return new Map();
      const key = byField.get(f['k'] ?? '');
      if (key !== undefined)
        held.set(key, [...(held.get(key) ?? []), f['r'] ? (JSON.parse(f['r']) as Row) : null]);
      from = `(${id}`;
    }
    if (entries.length < 1000) return held;
  }
}

/** Why the rows Redis holds for a view are not this definition's live rows, or null when they are. */
async function notServed(redis: RedisClient, prefix: string, view: CompiledView): Promise<string | null> {
  const [status, fp] = await redis.sendCommand<(string | null)[]>([
    'HMGET',
    metaKey(prefix),
    `status:${view.name}`,
    `fp:${view.name}`,
  ]);
  if (!status) return 'it has no state in Redis';
  if (fp !== view.fingerprint)
    return 'Redis serves another definition of it (its new one is being built, or another config writes it)';
  const parsed = JSON.parse(status) as ViewStatus;
  return parsed.state === 'live'
    ? null
    : `it is ${parsed.state}${parsed.reason ? ` (${parsed.reason})` : ''}`;
}

export async function verifyViews(options: VerifyOptions, names?: readonly string[]): Promise<ViewVerdict[]> {
  const { registry, redis, prefix, db } = options;
  const views =
    names && names.length > 0 ? registry.views.filter((v) => names.includes(v.name)) : registry.views;
  const verdicts: ViewVerdict[] = [];
  for (const view of views) {
    const unverified = await notServed(redis, prefix, view);
    if (unverified !== null) {
      verdicts.push({ view: view.name, rows: 0, differing: [], unverified });
      continue;
    }
    const [ours, theirs] = await Promise.all([viewRows(redis, prefix, view), sqlRows(db, view)]);
    let differing = differences(view, ours, theirs, new Set([...ours.keys(), ...theirs.keys()]));
    let last = { ours, theirs };
    for (let round = 0; differing.length > 0 && round < (options.rounds ?? 4); round++) {
      options.log?.(
        `  ${view.name}: ${differing.length} keys differ; checking them again in a window the database's rows fall in (round ${round + 1})`,
      );
      const v0 = await currentVersion(redis, prefix, view);
      const before = await viewRows(redis, prefix, view, differing);
      const sql = await sqlRows(db, view, differing);
      await catchUp(options);
      const held = await heldSince(options, view, v0, differing);
      last = { ours: await viewRows(redis, prefix, view, differing), theirs: sql };
      differing = differing.filter((k) => {
        const want = canonical(view, sql.get(k) ?? null);
        return (
          canonical(view, before.get(k) ?? null) !== want &&
          !(held.get(k) ?? []).some((row) => canonical(view, row) === want)
        );
      });
    }
    verdicts.push({
      view: view.name,
      rows: theirs.size,
      differing: differing.map((key) => ({
        key,
        view: last.ours.get(key) ?? null,
        sql: last.theirs.get(key) ?? null,
      })),
    });
  }
  return verdicts;
}
