/**
 * Reading a view's list: a page in key order or in an ordering, keeping only rows a predicate
 * accepts (the caller's row filter and `where`), and counting the rows it accepts.
 *
 *   key order / declared ordering   ZRANGEBYLEX on the key index or the ordering's index, after
 *                                   the cursor member: keyset pagination, stable under updates
 *   any other ordering               the whole view read at once (at most `sortInMemoryRows`
 *                                   rows), sorted here by the same member bytes an index would hold
 *
 * Filtering is done here (exact decimals, code-point text: core/encoding.ts), over runs read
 * atomically by one script each. A page reads runs until it has its rows or has examined `budget`
 * rows; then `scannedTo` says where to continue. Its version is the first run's: subscribing with
 * `since` from it may replay changes a later run already shows, never miss one.
 */
import { compareBytes, orderingMember } from '../../core/encoding.ts';
import type { Ordering } from '../orderings.ts';
import type { CompiledView } from '../registry.ts';
import { LIST_SCRIPT } from './read-scripts.ts';
import { FILTER_SCAN_BUDGET, finalizeRow, readChecked, type ReadOptions, type ViewRow } from './read.ts';
import { LuaScript, type RedisClient } from './redis.ts';

const listScript = new LuaScript(LIST_SCRIPT);

export interface ListRequest {
  /** null: key order. */
  readonly ordering: Ordering | null;
  /** Whether the ordering has an index (declared with indexBy); otherwise it is sorted in memory. */
  readonly indexed: boolean;
  /** The member (key, or ordering member) the page starts after. */
  readonly after: string | null;
  readonly limit: number;
  /** Rows the caller gets; null: every row. */
  readonly keep: ((row: ViewRow) => boolean) | null;
  /** Rows examined at most (with `keep`) before the page stops early. */
  readonly budget?: number;
  /** The largest view sorted in memory. */
  readonly sortInMemoryRows: number;
  /** What `keep` keeps, as a string equal for equal predicates (the access route): lets a page be kept and served again. */
  readonly keepKey?: string;
}

export interface ListPage {
  readonly version: string;
  readonly rows: readonly { readonly member: string; readonly key: string; readonly row: ViewRow }[];
  /** The last member examined when the budget ran out before `limit` rows were kept; else null. */
  readonly scannedTo: string | null;
  /** Rows of the whole view at the first read. */
  readonly rowCount: number;
  /** Set (and nothing else read) when an ordering to sort in memory meets a view larger than allowed. */
  readonly tooLarge: boolean;
}

type Run = { version: string; members: string[]; rows: (string | null)[]; rowCount: number };

async function readRun(redis: RedisClient, prefix: string, view: CompiledView, sig: string, after: string | null, count: number, all: boolean, options: ReadOptions): Promise<Run | 'large'> {
  const reply = await readChecked<unknown>(listScript, redis, prefix, view, [sig, after ?? '', String(count), all ? '1' : '0'], options);
  if (reply[0] === 'large') return 'large';
  const [version, members, rows, , rowCount] = reply as [string, string[], (string | null)[], number, number];
  return { version, members, rows, rowCount: Number(rowCount) };
}

export async function readList(redis: RedisClient, prefix: string, view: CompiledView, request: ListRequest, options: ReadOptions = {}): Promise<ListPage> {
  const { ordering, keep, limit } = request;
  if (ordering !== null && !request.indexed) return sortedInMemory(redis, prefix, view, request, options);
  const sig = ordering?.signature ?? '';
  const budget = request.budget ?? FILTER_SCAN_BUDGET;
  const keyOf = (member: string): string => (ordering === null ? member : member.slice(member.indexOf('\x00\x00') + 2));
  const rows: { member: string; key: string; row: ViewRow }[] = [];
  let after = request.after;
  let scanned = 0;
  let chunk = keep === null ? limit : Math.min(budget, Math.max(2 * limit, 100));
  let first: Run | null = null;
  for (;;) {
    const run = (await readRun(redis, prefix, view, sig, after, chunk, false, options)) as Run;
    first ??= run;
    for (let i = 0; i < run.members.length && rows.length < limit; i++) {
      const stored = run.rows[i];
      scanned++;
      after = run.members[i]!;
      if (!stored) continue;
      const row = finalizeRow(view, stored);
      if (keep === null || keep(row)) rows.push({ member: after, key: keyOf(after), row });
    }
    if (rows.length >= limit || run.members.length < chunk) return page(first, rows, null);
    if (scanned >= budget) return page(first, rows, after);
    chunk = Math.min(budget - scanned, chunk * 2);
  }
}

function page(first: Run, rows: ListPage['rows'], scannedTo: string | null): ListPage {
  return { version: first.version, rows, scannedTo, rowCount: first.rowCount, tooLarge: false };
}

/** A small view in an ordering it has no index for: all of it at once, sorted by member bytes. */
async function sortedInMemory(redis: RedisClient, prefix: string, view: CompiledView, request: ListRequest, options: ReadOptions): Promise<ListPage> {
  const run = await readRun(redis, prefix, view, '', null, request.sortInMemoryRows, true, options);
  if (run === 'large') return { version: '0-0', rows: [], scannedTo: null, rowCount: 0, tooLarge: true };
  const terms = request.ordering!.terms;
  const all: { member: string; key: string; row: ViewRow }[] = [];
  run.members.forEach((key, i) => {
    const stored = run.rows[i];
    if (!stored) return;
    const row = finalizeRow(view, stored);
    if (request.keep !== null && !request.keep(row)) return;
    const member = orderingMember(terms, row, key);
    if (request.after === null || compareBytes(member, request.after) > 0) all.push({ member, key, row });
  });
  all.sort((a, b) => compareBytes(a.member, b.member));
  return { version: run.version, rows: all.slice(0, request.limit), scannedTo: null, rowCount: run.rowCount, tooLarge: false };
}

/** The view's version now (after the read checks: live, its definition, not busy), reading no row. */
export async function listVersion(redis: RedisClient, prefix: string, view: CompiledView, options: ReadOptions = {}): Promise<string> {
  return ((await readRun(redis, prefix, view, '', null, 0, false, options)) as Run).version;
}

/**
 * The number of rows `keep` accepts (all rows without it: O(1)). With it, every row is examined
 * in runs of a thousand, and only when the view holds at most `budget` rows; otherwise null
 * (the caller says why).
 */
export async function countList(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  keep: ((row: ViewRow) => boolean) | null,
  budget: number = FILTER_SCAN_BUDGET,
  options: ReadOptions = {},
): Promise<{ count: number | null; rowCount: number }> {
  const head = (await readRun(redis, prefix, view, '', null, keep === null ? 0 : 1000, false, options)) as Run;
  if (keep === null) return { count: head.rowCount, rowCount: head.rowCount };
  if (head.rowCount > budget) return { count: null, rowCount: head.rowCount };
  let count = 0;
  let run = head;
  for (;;) {
    run.rows.forEach((stored) => {
      if (stored && keep(finalizeRow(view, stored))) count++;
    });
    if (run.members.length < 1000) return { count, rowCount: head.rowCount };
    run = (await readRun(redis, prefix, view, '', run.members.at(-1)!, 1000, false, options)) as Run;
  }
}
