/**
 * Reactions: TypeScript handlers that act when a view changes. Declared beside the views:
 *
 *   reactions: {
 *     bigSpender: reaction(views.revenueByCustomer, {
 *       when: crossedAbove((row) => row.revenue, 1000),
 *       handler: async (change, { idempotencyKey, signal }) => { await fetch(…, { signal, headers: { 'idempotency-key': idempotencyKey } }) },
 *     }),
 *   }
 *
 * A change is what a subscriber of the view sees, named by what happened to the row: it `entered`
 * the view, `left` it, or `changed` in it. Rows are typed by the view (`InferRow`).
 */
import type { InferRow, ViewDef } from './define.ts';
import type { Issue } from './errors.ts';

export type ReactionKind = 'entered' | 'left' | 'changed';

export interface ReactionChange<Row> {
  readonly view: string;
  readonly kind: ReactionKind;
  /** The row after the change (null when it left). */
  readonly row: Row | null;
  /** The row before the change (null when it entered). */
  readonly previous: Row | null;
  /** The view's version after the change: with the view and key, what makes the change unique. */
  readonly version: string;
}

export interface ReactionContext {
  /** view:key values:version (e.g. `revenueByCustomer:501:1733000000000-0`) — the same on every retry and after a restart: let the receiver drop repeats. */
  readonly idempotencyKey: string;
  /** Aborted when the attempt times out. */
  readonly signal: AbortSignal;
  /** 1 on the first attempt. */
  readonly attempt: number;
  readonly log: (message: string, fields?: Record<string, unknown>) => void;
}

/** Which changes a reaction handles: a predicate over the change (see `crossedAbove`, `crossedBelow`, `kinds`). */
export type ReactionFilter<Row> = ((change: ReactionChange<Row>) => boolean) & { readonly description?: string };

export interface ReactionOptions<Row> {
  /** Which changes to handle (default: every change). */
  readonly when?: ReactionFilter<Row>;
  readonly handler: (change: ReactionChange<Row>, context: ReactionContext) => Promise<void>;
  /** One attempt's time (ms; default 10 000): then its signal aborts and it counts as failed. */
  readonly timeoutMs?: number;
  /** Attempts after the first (default 5), waiting `backoffMs` × 2^n with jitter between them. */
  readonly retries?: number;
  /** Default 200 ms. */
  readonly backoffMs?: number;
  /** Changes handled at once (default 1); the changes of one view key always one after another, in order. */
  readonly concurrency?: number;
}

export interface ReactionDef<Row = Record<string, unknown>> extends Required<Pick<ReactionOptions<Row>, 'handler'>> {
  readonly kind: 'reaction';
  readonly view: ViewDef;
  readonly when: ReactionFilter<Row> | null;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;
  readonly concurrency: number;
}

/** A reaction to the changes of a declared view. */
export function reaction<V extends ViewDef>(view: V, options: ReactionOptions<InferRow<V>>): ReactionDef<InferRow<V>> {
  return {
    kind: 'reaction',
    view,
    when: options.when ?? null,
    handler: options.handler,
    timeoutMs: options.timeoutMs ?? 10_000,
    retries: options.retries ?? 5,
    backoffMs: options.backoffMs ?? 200,
    concurrency: options.concurrency ?? 1,
  };
}

/** Changes of these kinds only. */
export function kinds<Row>(...wanted: ReactionKind[]): ReactionFilter<Row> {
  return Object.assign((c: ReactionChange<Row>) => wanted.includes(c.kind), { description: `kind in (${wanted.join(', ')})` });
}

type Measure<Row> = (row: Row) => unknown;

/** A value of the row as a number (decimals arrive as exact strings; NULL and absence as null). */
function numeric<Row>(measure: Measure<Row>, row: Row | null): number | null {
  if (row === null) return null;
  const v = measure(row);
  if (v === null || v === undefined) return null;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isNaN(n) ? null : n;
}

/**
 * The measure is on the `above` side of the threshold now (at or above it, or below it) and was not
 * before (or was absent: the row entered). The threshold is a number or another measure of the
 * same row (`row => row.reorderLevel`).
 */
function crossed<Row>(measure: Measure<Row>, threshold: number | Measure<Row>, above: boolean): ReactionFilter<Row> {
  const side = (row: Row | null): boolean | null => {
    const value = numeric(measure, row);
    const limit = typeof threshold === 'number' ? threshold : numeric(threshold, row);
    return value === null || limit === null ? null : value >= limit === above;
  };
  return (c) => side(c.row) === true && side(c.previous) !== true;
}

/** The measure went from below the threshold (or absent: the row entered) to at or above it. */
export function crossedAbove<Row>(measure: Measure<Row>, threshold: number | Measure<Row>): ReactionFilter<Row> {
  return crossed(measure, threshold, true);
}

/** The measure went from at or above the threshold (or absent) to below it. */
export function crossedBelow<Row>(measure: Measure<Row>, threshold: number | Measure<Row>): ReactionFilter<Row> {
  return crossed(measure, threshold, false);
}

const REACTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** Each reaction names a declared view and sane options; every problem is listed. */
export function validateReactions(reactions: Readonly<Record<string, ReactionDef<never>>> | undefined, views: Readonly<Record<string, ViewDef>> | undefined, issues: Issue[]): void {
  const declared = new Map<ViewDef, string>(Object.entries(views ?? {}).map(([n, d]) => [d, n]));
  for (const [name, r] of Object.entries(reactions ?? {})) {
    const path = `reactions.${name}`;
    if (!REACTION_NAME.test(name)) issues.push({ path, message: `Expected a name of letters, digits, '_' or '-' starting with a letter, but found '${name}'` });
    if (!r || r.kind !== 'reaction') {
      issues.push({ path, message: 'Expected reaction(view, { handler }), but found something else' });
      continue;
    }
    if (!declared.has(r.view)) issues.push({ path: `${path}.view`, message: 'Expected one of the views declared in this config (pass the view itself, e.g. views.lowStock)' });
    if (typeof r.handler !== 'function') issues.push({ path: `${path}.handler`, message: 'Expected an async function (change, context) => …' });
    for (const [option, value, min] of [['timeoutMs', r.timeoutMs, 1], ['retries', r.retries, 0], ['backoffMs', r.backoffMs, 0], ['concurrency', r.concurrency, 1]] as const) {
      if (!Number.isInteger(value) || value < min) issues.push({ path: `${path}.${option}`, message: `Expected an integer of at least ${min}, but found ${value}` });
    }
  }
}

/** The name of the view a reaction reacts to. */
export function reactionViewName(r: ReactionDef<never>, views: Readonly<Record<string, ViewDef>>): string | undefined {
  return Object.entries(views).find(([, d]) => d === r.view)?.[0];
}
