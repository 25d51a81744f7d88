/**
 * Reactions: TypeScript handlers that act when a view changes. Declared beside the views:
 *
 *   reactions: {
 *     bigSpender: reaction(views.revenueByCustomer, {
 *       when: crossedAbove((r) => r.revenue, 1000),   // expressions over the view's fields, as in views
 *       handler: async (change, { idempotencyKey, signal }) => { await fetch(…, { signal, headers: { 'idempotency-key': idempotencyKey } }) },
 *     }),
 *   }
 *
 * A change is what a subscriber of the view sees, named by what happened to the row: it `entered`
 * the view, `left` it, or `changed` in it. Rows are typed by the view (`InferRow`).
 */
import type { Row } from '../ingest/change.ts';
import type { Value } from '../core/values.ts';
import { literalNode, outputRefs, viewFields, type Expr, type FieldColumns, type InferRow, type ViewDef } from './define.ts';
import type { Issue } from './errors.ts';
import type { ExprNode } from './expr.ts';
import { compareSql } from './functions.ts';
import { evaluate, isTrue } from './plan/evaluate.ts';
import { exprToSql } from './sql.ts';

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

/** The column references a view's conditions are written over. */
export type ColumnsOf<V> = V extends ViewDef<infer F> ? FieldColumns<F> : never;

export interface ReactionOptions<V extends ViewDef> {
  /** Which changes to handle (default: every change); several conditions must all hold. */
  readonly when?: When<ColumnsOf<V>> | readonly When<ColumnsOf<V>>[];
  readonly handler: (change: ReactionChange<InferRow<V>>, context: ReactionContext) => Promise<void>;
  /** One attempt's time (ms; default 10 000): then its signal aborts and it counts as failed. */
  readonly timeoutMs?: number;
  /** Attempts after the first (default 5), waiting `backoffMs` × 2^n with jitter between them. */
  readonly retries?: number;
  /** Default 200 ms. */
  readonly backoffMs?: number;
  /** Changes handled at once (default 1). */
  readonly concurrency?: number;
  /** The changes of one view key one after another, in order (default true); false lets them run side by side too. */
  readonly orderedByKey?: boolean;
  /**
   * Called once a change is given up on (after its retries), beside parking it in the reaction's
   * dead letters: page someone, or send it elsewhere. Its own failure is logged, not retried.
   */
  readonly onGiveUp?: (change: ReactionChange<InferRow<V>>, error: unknown) => Promise<void> | void;
  /** `status` and the logs warn when more changes than this wait for the reaction (default 10 000). */
  readonly warnBacklog?: number;
  /**
   * At most this many changes are kept for the reaction (default: no bound — the view's changelog is
   * never trimmed past a change it has not handled). Past it the oldest are trimmed anyway and
   * recorded in its dead letters as lost: a bound on Redis memory when no worker runs it.
   */
  readonly maxBacklog?: number;
}

export interface ReactionDef<R = Record<string, unknown>> {
  readonly kind: 'reaction';
  readonly view: ViewDef;
  /** Resolved over the view's fields; all must hold (none: every change). */
  readonly conditions: readonly ReactionCondition[];
  /** Evaluates the conditions on a change. */
  readonly selects: (change: ReactionChange<Record<string, unknown>>) => boolean;
  readonly handler: (change: ReactionChange<R>, context: ReactionContext) => Promise<void>;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;
  readonly concurrency: number;
  readonly orderedByKey: boolean;
  readonly onGiveUp: ((change: ReactionChange<R>, error: unknown) => Promise<void> | void) | null;
  readonly warnBacklog: number;
  readonly maxBacklog: number | null;
}

/** A reaction to the changes of a declared view. */
export function reaction<V extends ViewDef>(view: V, options: ReactionOptions<V>): ReactionDef<InferRow<V>> {
  const when = options.when === undefined ? [] : Array.isArray(options.when) ? options.when : [options.when as When<ColumnsOf<V>>];
  const fields = viewFields(view);
  const conditions = when.map((w) => w.resolve(outputRefs(fields) as ColumnsOf<V>, outputRefs(fields, 'previous') as ColumnsOf<V>));
  return {
    kind: 'reaction',
    view,
    conditions,
    selects: compileConditions(conditions),
    handler: options.handler,
    timeoutMs: options.timeoutMs ?? 10_000,
    retries: options.retries ?? 5,
    backoffMs: options.backoffMs ?? 200,
    concurrency: options.concurrency ?? 1,
    orderedByKey: options.orderedByKey ?? true,
    onGiveUp: options.onGiveUp ?? null,
    warnBacklog: options.warnBacklog ?? 10_000,
    maxBacklog: options.maxBacklog ?? null,
  };
}

/**
 * Which changes a reaction handles, as data the service can check against the view's fields,
 * print (`status`) and evaluate with SQL's semantics: `kinds(…)`, `crossedAbove`/`crossedBelow`,
 * `matches` — built from the same expressions as views (`gt`, `add`, `coalesce`, …).
 */
export type ReactionCondition =
  | { readonly kind: 'kinds'; readonly kinds: readonly ReactionKind[] }
  /** `measure` is on the `above` side of `threshold` after the change (at or above it, or below it), and was not before. */
  | { readonly kind: 'crossed'; readonly above: boolean; readonly measure: ExprNode; readonly threshold: ExprNode }
  /** A predicate over the row after the change (`row`) and before it (`previous`: NULLs when it entered). */
  | { readonly kind: 'matches'; readonly predicate: ExprNode };

/** A condition not yet tied to a view: `reaction()` resolves it over the view's fields. */
export interface When<Cols> {
  readonly resolve: (row: Cols, previous: Cols) => ReactionCondition;
}

/** Changes of these kinds only. */
export function kinds(...wanted: ReactionKind[]): When<unknown> {
  return { resolve: () => ({ kind: 'kinds', kinds: wanted }) };
}

type Measure<Cols> = (row: Cols) => Expr;

function crossed<Cols>(measure: Measure<Cols>, threshold: number | string | Measure<Cols>, above: boolean): When<Cols> {
  return {
    resolve: (row) => {
      const m = measure(row).node;
      // A number is an integer or a decimal; a string is read as the measure's type (an exact decimal, a timestamp).
      const t = typeof threshold === 'function' ? threshold(row).node : literalNode(threshold, typeof threshold === 'number' ? undefined : m.type);
      return { kind: 'crossed', above, measure: m, threshold: t };
    },
  };
}

/**
 * The measure went from below the threshold (or absent: the row entered) to at or above it. The
 * threshold is a number (or an exact decimal string) or another expression over the same row.
 *
 * @example crossedAbove((r) => r.revenue, 1000)
 */
export function crossedAbove<Cols>(measure: Measure<Cols>, threshold: number | string | Measure<Cols>): When<Cols> {
  return crossed(measure, threshold, true);
}

/**
 * The measure went from at or above the threshold (or absent) to below it.
 *
 * @example crossedBelow((r) => r.stock, (r) => r.reorderLevel)
 */
export function crossedBelow<Cols>(measure: Measure<Cols>, threshold: number | string | Measure<Cols>): When<Cols> {
  return crossed(measure, threshold, false);
}

/**
 * A predicate over the row after the change and before it (NULL fields where there is none), with
 * SQL's semantics: a NULL result selects nothing.
 *
 * @example matches((r, previous) => gt(sub(r.revenue, previous.revenue), 500))   // a jump of more than 500
 */
export function matches<Cols>(predicate: (row: Cols, previous: Cols) => Expr<'bool', boolean>): When<Cols> {
  return { resolve: (row, previous) => ({ kind: 'matches', predicate: predicate(row, previous).node }) };
}

/** The column name a `previous.<field>` reference is evaluated under (a change's two rows merged into one). */
const PREVIOUS = 'previous.';

function evaluable(node: ExprNode): ExprNode {
  if (node.kind === 'column') return node.source === 'previous' ? { ...node, column: PREVIOUS + node.column } : node;
  if (node.kind === 'call') return { ...node, args: node.args.map(evaluable) };
  return node;
}

/** Evaluates resolved conditions (all must hold) on changes. */
export function compileConditions(conditions: readonly ReactionCondition[]): (change: ReactionChange<Record<string, unknown>>) => boolean {
  const tests = conditions.map((c): ((change: ReactionChange<Record<string, unknown>>) => boolean) => {
    switch (c.kind) {
      case 'kinds':
        return (change) => c.kinds.includes(change.kind);
      case 'crossed': {
        const side = (row: Record<string, unknown> | null): boolean | null => {
          if (row === null) return null;
          const value = evaluate(c.measure, row as Row);
          const limit = evaluate(c.threshold, row as Row);
          if (value === null || limit === null) return null;
          return compareSql(c.measure.type, value, c.threshold.type, limit) >= 0 === c.above;
        };
        return (change) => side(change.row) === true && side(change.previous) !== true;
      }
      case 'matches': {
        const predicate = evaluable(c.predicate);
        return (change) => {
          const merged: Record<string, Value> = { ...(change.row as Row | null) };
          for (const [field, value] of Object.entries(change.previous ?? {})) merged[PREVIOUS + field] = value as Value;
          return isTrue(predicate, merged);
        };
      }
    }
  });
  return (change) => tests.every((t) => t(change));
}

/** How a condition reads in `status` and logs. */
export function describeCondition(c: ReactionCondition): string {
  switch (c.kind) {
    case 'kinds':
      return `the row ${c.kinds.join(' or ')}`;
    case 'crossed':
      return `${exprToSql(c.measure)} crossed ${c.above ? 'above' : 'below'} ${exprToSql(c.threshold)}`;
    case 'matches':
      return exprToSql(c.predicate);
  }
}

/** Fields a condition names that the view does not have. */
function unknownFields(c: ReactionCondition): string[] {
  const nodes = c.kind === 'crossed' ? [c.measure, c.threshold] : c.kind === 'matches' ? [c.predicate] : [];
  const found: string[] = [];
  const walk = (node: ExprNode): void => {
    if (node.kind === 'column' && (node as { undeclared?: boolean }).undeclared) found.push(node.source === 'previous' ? `previous.${node.column}` : node.column);
    if (node.kind === 'call') node.args.forEach(walk);
  };
  nodes.forEach(walk);
  return found;
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
    for (const [option, value, min] of [
      ['timeoutMs', r.timeoutMs, 1],
      ['retries', r.retries, 0],
      ['backoffMs', r.backoffMs, 0],
      ['concurrency', r.concurrency, 1],
      ['warnBacklog', r.warnBacklog, 1],
      ['maxBacklog', r.maxBacklog ?? 1, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) issues.push({ path: `${path}.${option}`, message: `Expected an integer of at least ${min}, but found ${value}` });
    }
    const fields = viewFields(r.view).map((f) => f.name);
    for (const unknown of r.conditions.flatMap(unknownFields)) {
      issues.push({ path: `${path}.when`, message: `Expected a field of the view (${fields.join(', ')}), but found '${unknown}'` });
    }
  }
}

/** The name of the view a reaction reacts to. */
export function reactionViewName(r: ReactionDef<never>, views: Readonly<Record<string, ViewDef>>): string | undefined {
  return Object.entries(views).find(([, d]) => d === r.view)?.[0];
}
