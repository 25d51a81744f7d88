/**
 * A view as a graph of operators, and the running dataflow of a whole config.
 *
 *   PlanNode     the compiled, pure description of a view's operators (registry.ts builds it
 *                from the definition; it prints, fingerprints and validates without Redis)
 *   Dataflow     the operators of every view, instantiated on a deployment's keys, in the order a
 *                batch flows through them; a view read by other views is maintained once and
 *                its output feeds them
 *
 *   e.g. revenueByCustomer:  scan(orders) ─▶ filter(status = 'paid') ─▶ reduce(customer_id: count, sum, max) ─▶ output
 *        topCustomers:       [output of revenueByCustomer] ─▶ topN(revenue desc, 10) ─▶ output
 */
import type { ColumnType } from '../../core/values.ts';
import type { TableDef } from '../define.ts';
import type { ExprNode } from '../expr.ts';
import type { Accumulator, CompiledAggregate } from '../operators/aggregates.ts';
import { Filter } from '../operators/filter.ts';
import { DEFAULT_FANOUT_CHUNK, Join } from '../operators/join.ts';
import { TopN } from '../operators/topn.ts';
import { ViewInput } from '../operators/view-input.ts';
import { Output } from '../operators/output.ts';
import { Project } from '../operators/project.ts';
import { Reduce } from '../operators/reduce.ts';
import { Scan } from '../operators/scan.ts';
import type { Operator } from '../operators/types.ts';
import { changelogKey, indexKey, metaKey, orderingKey, rowsKey, seqKey } from '../store/keys.ts';
import type { Ordering } from '../orderings.ts';

export type PlanNode =
  | {
      readonly kind: 'scan';
      readonly id: string;
      readonly table: TableDef;
      readonly alias: string;
      readonly columns: readonly string[];
    }
  | { readonly kind: 'filter'; readonly id: string; readonly input: PlanNode; readonly predicate: ExprNode }
  | {
      readonly kind: 'project';
      readonly id: string;
      readonly input: PlanNode;
      readonly fields: readonly { readonly name: string; readonly node: ExprNode }[];
    }
  | {
      readonly kind: 'reduce';
      readonly id: string;
      readonly input: PlanNode;
      readonly groups: readonly { readonly name: string; readonly node: ExprNode }[];
      readonly groupTypes: readonly ColumnType[];
      readonly aggregates: readonly CompiledAggregate[];
      readonly accumulators: readonly Accumulator[];
    }
  /** The output of another declared view, its fields renamed `<alias>.<field>`. */
  | {
      readonly kind: 'view';
      readonly id: string;
      readonly view: string;
      readonly alias: string;
      readonly fields: readonly string[];
    }
  | {
      readonly kind: 'join';
      readonly id: string;
      readonly type: 'inner' | 'left';
      readonly left: PlanNode;
      readonly right: PlanNode;
      /** Equalities: an expression over the left rows = one over the right rows (a composite key). */
      readonly on: readonly { readonly left: ExprNode; readonly right: ExprNode }[];
      readonly keyTypes: readonly ColumnType[];
      /** The right side's row fields (NULL on a left join without a match). */
      readonly rightColumns: readonly string[];
    }
  | {
      readonly kind: 'topN';
      readonly id: string;
      readonly input: PlanNode;
      readonly partition: readonly ExprNode[];
      readonly partitionTypes: readonly ColumnType[];
      readonly order: readonly { readonly node: ExprNode; readonly desc: boolean }[];
      readonly limit: number;
      /** The view key (ties are broken by it, ascending). */
      readonly keyFields: readonly { readonly name: string; readonly type: ColumnType }[];
    };

/** What the dataflow needs to know of a compiled view. */
export interface ViewNode {
  /** Its name in the dataflow (a retired definition's is its storage). */
  readonly name: string;
  /** Where its rows and operator state live (store/keys.ts storageOf). */
  readonly storage: string;
  /** The view whose changelog it writes, when not `name` (a retired definition: the view it served). */
  readonly serves?: string;
  /** The operators up to (not including) the output. */
  readonly plan: PlanNode;
  readonly fields: readonly { readonly name: string }[];
  readonly keyFields: readonly { readonly name: string; readonly type: ColumnType }[];
  /** Orderings kept as sorted sets beside the rows, written in the same step. */
  readonly orderings?: readonly Ordering[];
}

export interface Dataflow {
  /** Every scan, by table. */
  readonly scans: ReadonlyMap<string, readonly Scan[]>;
  /** Operators after the scans, in an order where every operator comes after its inputs. */
  readonly order: readonly Operator[];
  readonly outputs: ReadonlyMap<string, Output>;
  /** The view each operator belongs to. */
  readonly owner: ReadonlyMap<Operator, string>;
  /** Views that read a view's output, transitively (a view stopping stops them too). */
  readonly dependents: ReadonlyMap<string, ReadonlySet<string>>;
  /** Where runs add up each view's planning cost (plan/run.ts), when someone reads it (metrics). */
  readonly costs?: ViewCosts;
}

/**
 * Per view: milliseconds its operators spent planning (scans, needs and steps; waiting for reads
 * excluded) and the Redis writes they planned, added up over every run since the process started.
 */
export type ViewCosts = Map<string, { ms: number; writes: number }>;

/**
 * Build the operators of every view (`views` in dependency order: a view after the views it reads).
 * `untrimmed`: views whose changelog the write step must not trim (reactions read it: it is trimmed
 * behind the slowest of them instead, `reactions/trim.ts`). `fanoutChunk`: a join key with more rows
 * on the other side is joined after the batch, in chunks (operators/join.ts, plan/fanout.ts).
 */
export function buildDataflow(
  views: readonly ViewNode[],
  prefix: string,
  options: { changelogMaxLength: number; untrimmed?: ReadonlySet<string>; fanoutChunk?: number; costs?: ViewCosts },
): Dataflow {
  const scans = new Map<string, Scan[]>();
  const order: Operator[] = [];
  const outputs = new Map<string, Output>();
  const owner = new Map<Operator, string>();
  const dependents = new Map<string, Set<string>>(views.map((v) => [v.name, new Set()]));
  const ancestors = (name: string): string[] =>
    [...dependents].filter(([, ds]) => ds.has(name)).map(([v]) => v);

  for (const view of views) {
    const build = (node: PlanNode): Operator => {
      let op: Operator;
      switch (node.kind) {
        case 'scan': {
          const scan = new Scan({
            id: node.id,
            table: node.table,
            alias: node.alias,
            columns: node.columns,
            view: view.name,
          });
          scans.set(node.table.name, [...(scans.get(node.table.name) ?? []), scan]);
          owner.set(scan, view.name);
          return scan;
        }
        case 'filter':
          op = new Filter(node.id, build(node.input), node.predicate);
          break;
        case 'project':
          op = new Project(node.id, build(node.input), node.fields);
          break;
        case 'reduce':
          op = new Reduce(node, build(node.input), prefix);
          break;
        case 'join':
          op = new Join(
            node,
            build(node.left),
            build(node.right),
            prefix,
            options.fanoutChunk ?? DEFAULT_FANOUT_CHUNK,
            rowFields(node.left),
          );
          break;
        case 'topN':
          op = new TopN(node, build(node.input), prefix, rowFields(node.input));
          break;
        case 'view': {
          const producer = outputs.get(node.view);
          if (!producer)
            throw new Error(`view ${view.name} reads ${node.view}, which is not built before it`);
          for (const d of [node.view, ...ancestors(node.view)]) dependents.get(d)?.add(view.name);
          op = new ViewInput(node.id, producer, node.alias, node.fields);
          break;
        }
      }
      order.push(op);
      owner.set(op, view.name);
      return op;
    };
    const root = build(view.plan);
    const shown = view.serves ?? view.name;
    const output = new Output(
      {
        id: `${view.storage}/output`,
        view: shown,
        fields: view.fields.map((f) => f.name),
        keyFields: view.keyFields.map((f) => f.name),
        keyTypes: view.keyFields.map((f) => f.type),
        orderings: (view.orderings ?? []).map((o) => o.terms),
      },
      root,
      {
        rows: rowsKey(prefix, view.storage),
        index: indexKey(prefix, view.storage),
        log: changelogKey(prefix, shown),
        seq: seqKey(prefix),
        meta: metaKey(prefix),
        orderings: (view.orderings ?? []).map((o) => orderingKey(prefix, view.storage, o.signature)),
      },
      options.untrimmed?.has(shown) ? 0 : options.changelogMaxLength,
    );
    order.push(output);
    owner.set(output, view.name);
    outputs.set(view.name, output);
  }
  return { scans, order, outputs, owner, dependents, ...(options.costs ? { costs: options.costs } : {}) };
}

/** The fields of the rows a plan node outputs, in order (the shape its rows are made in). */
export function rowFields(node: PlanNode): string[] {
  switch (node.kind) {
    case 'scan':
      return node.columns.map((c) => `${node.alias}.${c}`);
    case 'view':
      return node.fields.map((f) => `${node.alias}.${f}`);
    case 'filter':
    case 'topN':
      return rowFields(node.input);
    case 'project':
      return node.fields.map((f) => f.name);
    case 'reduce':
      return [...node.groups.map((g) => g.name), ...node.aggregates.map((a) => a.name)];
    case 'join':
      return [...rowFields(node.left), ...node.rightColumns];
  }
}
