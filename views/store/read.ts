/**
 * Reading views back: stored rows → output rows (finalize), point reads, atomic pages, and the
 * changelog. Used by the API and by the tests; pure decoding is kept apart from the Redis calls.
 */
import type { Value } from '../../core/values.ts';
import { ViewUnavailableError } from '../errors.ts';
import { PAGE_SCRIPT, ROW_SCRIPT } from './read-scripts.ts';
import { changelogKey, checkpointKey, rowsKey } from './keys.ts';
import { LuaScript, type RedisClient } from './redis.ts';
import type { CompiledView } from '../registry.ts';

export type ViewRow = Record<string, Value>;

/** The output row of a view from its stored form (rows are stored as they are shown). */
export function finalizeRow(_view: CompiledView, stored: string): ViewRow {
  return JSON.parse(stored) as ViewRow;
}

type ReadReply<T> = ['ok', ...T[]] | ['unavailable', string] | ['busy', string];

const rowScript = new LuaScript(ROW_SCRIPT);
const pageScript = new LuaScript(PAGE_SCRIPT);

export interface ReadOptions {
  /** How long a read waits for a transaction being applied in parts to finish (ms). */
  readonly busyWaitMs?: number;
}

/**
 * Run a read script; a view that is not servable throws ViewUnavailableError, and a view in the
 * middle of a transaction applied in parts is waited for (readers never see half of it).
 */
export async function readChecked<T>(
  script: LuaScript,
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  args: string[],
  options: ReadOptions,
): Promise<T[]> {
  const deadline = Date.now() + (options.busyWaitMs ?? 15_000);
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const reply = await script.run<ReadReply<T>>(
      redis,
      [rowsKey(prefix, view.storage)],
      [prefix, view.name, view.fingerprint, ...args],
    );
    if (reply[0] === 'ok') return reply.slice(1) as T[];
    if (reply[0] === 'busy' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    throw unavailable(view.name, reply[0], String(reply[1]));
  }
}

function unavailable(view: string, kind: 'unavailable' | 'busy', detail: string): ViewUnavailableError {
  if (kind === 'busy') {
    return new ViewUnavailableError(
      view,
      'busy',
      `View ${view} is applying a transaction too large for one step; retry shortly`,
    );
  }
  if (detail === '') {
    return new ViewUnavailableError(
      view,
      'missing',
      `View ${view} has no state in Redis yet: it is being built (first start, or after Redis lost its data)`,
    );
  }
  if (detail === 'definition') {
    return new ViewUnavailableError(
      view,
      'definition',
      `View ${view} in Redis was built from another definition (another version of the service writes this deployment); it is served once this version has built it`,
    );
  }
  const status = JSON.parse(detail) as { state: 'building' | 'stopped'; reason?: string };
  const reason = status.reason ? `: ${status.reason}` : '';
  return status.state === 'stopped'
    ? new ViewUnavailableError(view, 'stopped', `View ${view} is stopped${reason}`)
    : new ViewUnavailableError(
        view,
        'building',
        `View ${view} is being built${reason}; it is served once complete`,
      );
}

/** One row by its encoded key, or null. */
export async function readRow(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  key: string,
  options: ReadOptions = {},
): Promise<ViewRow | null> {
  return (await readRowAt(redis, prefix, view, key, options)).row;
}

/** One row by its encoded key (or null), with the view's version it was read at. */
export async function readRowAt(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  key: string,
  options: ReadOptions = {},
): Promise<{ row: ViewRow | null; version: string }> {
  const [stored, version] = await readChecked<string | null>(rowScript, redis, prefix, view, [key], options);
  return { row: stored ? finalizeRow(view, stored) : null, version: version ?? '0-0' };
}

/** The source positions the views hold (the checkpoint), per stream. */
export async function checkpointTokens(redis: RedisClient, prefix: string): Promise<Map<string, string>> {
  const flat = await redis.sendCommand<string[]>(['HGETALL', checkpointKey(prefix)]);
  const tokens = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2)
    if (!flat[i]!.startsWith('~')) tokens.set(flat[i]!, flat[i + 1]!);
  return tokens;
}

export interface Page {
  /** The view's version when the page was read: subscribe with `since: version` to continue. */
  readonly version: string;
  /** The number of the changelog entry at that version (0 before the first). */
  readonly seq: number;
  readonly rows: { key: string; row: ViewRow }[];
  /**
   * With a filter: the last key examined when the read's budget ran out before `limit` rows
   * matched (continue after it); null when the rows returned are all there were.
   */
  readonly scannedTo: string | null;
}

/** Rows examined at most by one filtered page read (bounded work, however rare the matches). */
export const FILTER_SCAN_BUDGET = 10_000;

/** A filtered page holds only rows whose field equals the value (as the row stores it), every pair. */
export type RowFilter = readonly (readonly [field: string, value: Value])[];

/** Up to `limit` rows after `afterKey` in key order, read atomically with the view's version. */
export async function readPage(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  afterKey: string | null,
  limit: number,
  options: ReadOptions & { readonly filter?: RowFilter; readonly budget?: number } = {},
): Promise<Page> {
  // Rows are stored as JSON.stringify wrote them: a member is `"field":<JSON of its value>`.
  const needles = (options.filter ?? []).map(([field, value]) => `"${field}":${JSON.stringify(value)}`);
  const [version, keys, stored, seq, scannedTo] = (await readChecked<unknown>(
    pageScript,
    redis,
    prefix,
    view,
    [afterKey ?? '', String(limit), String(options.budget ?? FILTER_SCAN_BUDGET), ...needles],
    options,
  )) as [string, string[], (string | null)[], number, string];
  const rows: Page['rows'] = [];
  keys.forEach((key, i) => {
    const s = stored[i];
    if (s) rows.push({ key, row: finalizeRow(view, s) });
  });
  return { version, rows, seq: Number(seq), scannedTo: scannedTo === '' ? null : scannedTo };
}

export interface ViewChange {
  readonly view: string;
  /** The changelog entry id: the view's version after this change. */
  readonly version: string;
  /** 'reset': the view's history starts over here (rebuilt, or a transaction too large to log); subscribers start over from a snapshot. */
  readonly op: 'insert' | 'update' | 'delete' | 'reset';
  readonly key: string;
  readonly row: ViewRow | null;
  readonly previous: ViewRow | null;
  /** Why, for a reset. */
  readonly reason?: string;
  /** The entry's number in the view's changelog: consecutive entries differ by one (0 if unknown). */
  readonly seq: number;
  /** The last entry one step wrote to this view: the view is here in a state the source had after a commit. */
  readonly end?: boolean;
}

type StreamEntry = [id: string, fields: string[]];

export function decodeChangelogEntry(view: CompiledView, [id, fields]: StreamEntry): ViewChange {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  const seq = Number(f['n'] ?? 0);
  if (f['o'] === 'reset')
    return {
      view: view.name,
      version: id,
      op: 'reset',
      key: '',
      row: null,
      previous: null,
      reason: f['why'] ?? '',
      seq,
    };
  const op = f['o'] === 'i' ? 'insert' : f['o'] === 'u' ? 'update' : 'delete';
  return {
    view: view.name,
    version: id,
    op,
    key: f['k'] ?? '',
    row: f['r'] ? finalizeRow(view, f['r']) : null,
    previous: f['p'] ? finalizeRow(view, f['p']) : null,
    seq,
    end: f['e'] === '1',
  };
}

/** The changelog entry at exactly `version`, or null (trimmed, or never there). */
export async function readChangelogEntry(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  version: string,
): Promise<ViewChange | null> {
  const entries = await redis.sendCommand<StreamEntry[]>([
    'XRANGE',
    changelogKey(prefix, view.name),
    version,
    version,
  ]);
  return entries[0] ? decodeChangelogEntry(view, entries[0]) : null;
}

/** Changelog entries after `afterVersion` (exclusive), oldest first. */
export async function readChangelog(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  afterVersion: string,
  count: number,
): Promise<ViewChange[]> {
  const entries = await redis.sendCommand<StreamEntry[]>([
    'XRANGE',
    changelogKey(prefix, view.name),
    `(${afterVersion}`,
    '+',
    'COUNT',
    String(count),
  ]);
  return entries.map((e) => decodeChangelogEntry(view, e));
}

/** The newest version trimmed from a view's changelog ('0-0' if none): resuming before it would skip changes. */
export async function trimmedUpTo(redis: RedisClient, prefix: string, view: CompiledView): Promise<string> {
  try {
    const info = await redis.sendCommand<unknown[]>(['XINFO', 'STREAM', changelogKey(prefix, view.name)]);
    const i = info.indexOf('max-deleted-entry-id');
    return i >= 0 ? String(info[i + 1]) : '0-0';
  } catch {
    return '0-0'; // no changelog yet
  }
}

/** The current version of a view ('0-0' before its first change). */
export async function currentVersion(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
): Promise<string> {
  const last = await redis.sendCommand<StreamEntry[]>([
    'XREVRANGE',
    changelogKey(prefix, view.name),
    '+',
    '-',
    'COUNT',
    '1',
  ]);
  return last[0]?.[0] ?? '0-0';
}
