/**
 * Aggregation pushed below a join (eager aggregation; Yan & Larson, VLDB 1995). A grouped join
 * whose groups read one side O only, joined on O's whole primary key, with every aggregate over
 * the other side S, is planned with S reduced first, per join key, to partial aggregates — so the
 * join keeps one row per join key for S instead of every S row (state that follows O and the
 * groups, not the table S), and a batch of S changes reaches the join as one change per key:
 *
 *   S ─▶ reduce (by S's join key: partial aggregates) ─┐
 *   O ─────────────────────────────────────────────────┴▶ join ─▶ …
 *
 *   … ─▶ project                when the groups hold O's key: each group is one O row, which meets
 *                               at most one partial row, so the partial values are the group's
 *                               values — any aggregate (a left row without a match: count 0,
 *                               count(*) 1, the others NULL, as SQL's aggregates over no rows)
 *   … ─▶ reduce (by the groups) otherwise: the partial values combined, exactly — count → the sum
 *                               of the partial counts (a left row without a match adds 0, or 1 to
 *                               count(*)), sum → the sum of the partial sums (exact decimals: the
 *        [─▶ project]           largest scale among the partial sums is the largest among the rows),
 *                               avg → the combined sum over the combined count (carried apart,
 *                               divided by the project), min/max/bool_and/bool_or → of the partial ones
 *
 * Left out (planned as join ─▶ reduce): when the groups do not hold O's key, count distinct (not
 * combinable from partial counts) and sums and averages of floats (the order of additions would
 * change their rounding); always, a left join whose S is the preserved side, and a join with
 * conditions beyond the key equalities.
 */
import type { ColumnType } from '../../core/values.ts';
import { isFloatType, sumType, type AggregateNode, type ColumnNode, type ExprNode } from '../expr.ts';
import { rowFields, type PlanNode } from './graph.ts';

export interface NamedExpr {
  readonly name: string;
  readonly node: ExprNode;
}

export interface NamedAggregate {
  readonly name: string;
  readonly node: AggregateNode;
}

/** How the caller makes a reduce node (registry.ts compiles the aggregates into accumulators). */
export type MakeReduce = (
  id: string,
  input: PlanNode,
  groups: readonly NamedExpr[],
  aggregates: readonly NamedAggregate[],
) => PlanNode;

const COMBINED = new Set(['count', 'sum', 'avg', 'min', 'max', 'boolAnd', 'boolOr']);

/** The plan with the aggregation pushed below the join, or null when the rewrite does not apply. */
export function aggregateBelowJoin(
  view: string,
  input: PlanNode,
  groups: readonly NamedExpr[],
  aggregates: readonly NamedAggregate[],
  makeReduce: MakeReduce,
): PlanNode | null {
  if (input.kind !== 'join') return null;
  for (const oneSide of input.type === 'left' ? (['left'] as const) : (['right', 'left'] as const)) {
    const manySide = oneSide === 'left' ? 'right' : 'left';
    const one = input[oneSide];
    const many = input[manySide];
    const key = wholeKeyJoined(
      one,
      input.on.map((p) => p[oneSide]),
    );
    if (key === null) continue;
    const oneFields = new Set(rowFields(one));
    const manyFields = new Set(rowFields(many));
    if (!groups.every((g) => readsOnly(g.node, oneFields))) continue;
    if (!aggregates.every((a) => a.node.arg === null || readsOnly(a.node.arg, manyFields))) continue;
    // Grouped by O's key (and columns of O): each group is one O row, which meets at most one
    // partial row: the partial values are the group's values, whatever the aggregate.
    const grouped = new Set(groups.flatMap((g) => (g.node.kind === 'column' ? [g.node.column] : [])));
    const perRow = key.every((k) => grouped.has(k));
    if (!perRow && !aggregates.every((a) => combinable(a.node))) continue;

    // S by its join key, with a partial value of every aggregate.
    const keys = input.on.map((p, i): NamedExpr => ({ name: `~k${i}`, node: p[manySide] }));
    // Each aggregate's partial value (~a<i>); combined, an avg is carried as its sum (~a<i>) and its
    // count (~c<i>), divided after the second reduce. `combined`: the name it has after that reduce.
    const partials = aggregates.flatMap((a, i) =>
      !perRow && a.node.fn === 'avg'
        ? [
            {
              name: `~a${i}`,
              combined: `~a${i}`,
              node: { ...a.node, fn: 'sum' as const, type: sumType(a.node.arg!.type) },
            },
            {
              name: `~c${i}`,
              combined: `~c${i}`,
              node: { ...a.node, fn: 'count' as const, type: 'int8' as const },
            },
          ]
        : [{ name: `~a${i}`, combined: a.name, node: a.node }],
    );
    const partial = makeReduce(`${view}/partial`, many, keys, partials);
    const partialKey = keys.map((k) => column(k.name, k.node.type));
    const join: PlanNode = {
      ...input,
      left: oneSide === 'left' ? one : partial,
      right: oneSide === 'left' ? partial : one,
      on: input.on.map((p, i) =>
        oneSide === 'left'
          ? { left: p.left, right: partialKey[i]! }
          : { left: partialKey[i]!, right: p.right },
      ),
      rightColumns: oneSide === 'left' ? rowFields(partial) : input.rightColumns,
    };
    const left = input.type === 'left';
    if (perRow)
      return {
        kind: 'project',
        id: `${view}/project`,
        input: join,
        fields: [
          ...groups,
          ...aggregates.map((a, i) => ({
            name: a.name,
            node: unmatched(a.node, column(`~a${i}`, a.node.type), left),
          })),
        ],
      };
    const combined = makeReduce(
      `${view}/reduce`,
      join,
      groups,
      partials.map((p) => ({ name: p.combined, node: combine(p.node, column(p.name, p.node.type), left) })),
    );
    const averaged = aggregates.some((a) => a.node.fn === 'avg');
    if (!averaged) return combined;
    // An avg: its combined sum over its combined count, divided as the reduce divides (exact; NULL
    // over no values).
    return {
      kind: 'project',
      id: `${view}/project`,
      input: combined,
      fields: [
        ...groups.map((g) => ({ name: g.name, node: column(g.name, g.node.type) })),
        ...aggregates.map((a, i) => ({
          name: a.name,
          node:
            a.node.fn === 'avg'
              ? ({
                  kind: 'call',
                  fn: 'div',
                  args: [column(`~a${i}`, sumType(a.node.arg!.type)), column(`~c${i}`, 'int8')],
                  type: a.node.type,
                  nullable: true,
                } satisfies ExprNode)
              : column(a.name, a.node.type),
        })),
      ],
    };
  }
  return null;
}

/**
 * An aggregate's value where a left row may have no match (no partial value): SQL's aggregate over
 * no rows is 0 for a count, NULL for the others — and count(*) counts the NULL-extended row itself.
 */
function unmatched(node: AggregateNode, value: ColumnNode, left: boolean): ExprNode {
  const absent =
    node.fn === 'count' ? (node.arg === null ? '1' : '0') : node.fn === 'countDistinct' ? '0' : null;
  if (!left || absent === null) return value;
  return {
    kind: 'call',
    fn: 'coalesce',
    args: [value, { kind: 'literal', value: absent, type: node.type, nullable: false }],
    type: node.type,
    nullable: false,
  };
}

/** An aggregate over the partial values: counts are summed, the others applied again. */
function combine(node: AggregateNode, partial: ColumnNode, left: boolean): AggregateNode {
  if (node.fn !== 'count') return { ...node, arg: partial };
  // Counts are summed: a left row without a match adds 0 (count(x)) or itself (count(*)).
  return { ...node, fn: 'sum', arg: unmatched(node, partial, left) };
}

function combinable(node: AggregateNode): boolean {
  const summed = node.fn === 'sum' || node.fn === 'avg';
  return COMBINED.has(node.fn) && !(summed && node.arg !== null && isFloatType(node.arg.type));
}

/**
 * A table's rows (filtered or not) joined on exactly its primary key columns — each of its rows is
 * the only one with its join key: those columns (as rows name them), else null.
 */
function wholeKeyJoined(node: PlanNode, exprs: readonly ExprNode[]): string[] | null {
  const scan = node.kind === 'filter' ? node.input : node;
  if (scan.kind !== 'scan' || scan.table.key.length === 0) return null;
  const joined = exprs.map((e) => (e.kind === 'column' ? e.column : null));
  const key = scan.table.key.map((k) => `${scan.alias}.${k}`);
  const whole =
    joined.length === key.length &&
    new Set(joined).size === key.length &&
    key.every((k) => joined.includes(k));
  return whole ? key : null;
}

function readsOnly(node: ExprNode, fields: ReadonlySet<string>): boolean {
  switch (node.kind) {
    case 'column':
      return fields.has(node.column);
    case 'literal':
      return true;
    case 'call':
      return node.args.every((a) => readsOnly(a, fields));
  }
}

function column(name: string, type: ColumnType): ColumnNode {
  return { kind: 'column', table: '', column: name, type, nullable: true };
}
