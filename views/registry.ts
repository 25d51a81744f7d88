/**
 * From a user's config to a validated, frozen registry of compiled views.
 *
 * Validation collects every problem before failing (zod style), each with the path it concerns:
 *
 *   ✖ Expected a column of public.orders, but found 'stauts' (did you mean 'status'?)
 *     → at views.revenueByCustomer.where
 *
 * A compiled view knows what the dataflow and the Redis side need: its operator graph (plan/graph.ts),
 * its fields, its key and the key's types, the tables it reads (which columns, and whether it needs
 * their whole old rows), its SQL, and a fingerprint that changes whenever its stored state would.
 *
 * Compiling a view (the graph it becomes):
 *
 *   sources    a scan per table (only the columns the view reads), or the output of another view
 *   where      split into conjuncts; one that reads a single source is applied right after it (join
 *              state then holds only rows that can match), unless that source is the nullable side
 *              of a left join; the rest filters above the joins
 *   joins      left-deep: ((a ⋈ b) ⋈ c); ON is equalities between the new source and earlier ones,
 *              plus conjuncts that read the new source only (pushed below), or — for inner joins —
 *              anything else (a filter right above the join)
 *   groupBy    reduce; having filters its rows
 *   select     project (none: every field of the single source)
 *   orderBy    top-N over the result, per group or global, ties broken by the view key
 */
import { createHash } from 'node:crypto';
import type { TableRequirement } from '../ingest/source-options.ts';
import { isColumnType, type ColumnType } from '../core/values.ts';
import { viewFields, type SelectField, type SourceRef, type TableDef, type ViewDef } from './define.ts';
import { type Config } from './config.ts';
import { validateApiOptions } from './api-options.ts';
import { validateRedisOptions } from './redis-options.ts';
import { validateReactions } from './reactions.ts';
import { ConfigError, type Issue } from './errors.ts';
import {
  isFloatType,
  isNumericType,
  isTextType,
  type AggregateNode,
  type AnyNode,
  type CallNode,
  type ColumnNode,
  type ExprNode,
} from './expr.ts';
import { castProblem, commonType, likePatternProblem, TRUNC_UNITS } from './functions.ts';
import type { Accumulator, CompiledAggregate } from './operators/aggregates.ts';
import { aggregateBelowJoin } from './plan/eager-aggregation.ts';
import type { PlanNode } from './plan/graph.ts';
import { exprToSql, viewToSql } from './sql.ts';
import { compileOrderings, type Ordering } from './orderings.ts';
import { storageOf } from './store/keys.ts';

export type { Accumulator, CompiledAggregate } from './operators/aggregates.ts';

/** Bump when the Redis layout of view state changes: every view is rebuilt. */
export const STATE_LAYOUT_VERSION = 7;

export interface OutputField {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  readonly key: boolean;
}

/** A table a view reads: the columns, and whether its operators need whole old rows (they keep state). */
export interface TableRead {
  readonly table: TableDef;
  readonly columns: readonly string[];
  readonly needsOldRow: boolean;
}

export interface CompiledView {
  readonly name: string;
  readonly definition: ViewDef;
  /** rows: a row per source row (or joined rows); aggregate: a row per group; topN: the first rows of each group. */
  readonly kind: 'rows' | 'aggregate' | 'topN';
  /** Every output field, key fields included, in declaration order. */
  readonly fields: readonly OutputField[];
  readonly keyFields: readonly OutputField[];
  readonly keyTypes: readonly ColumnType[];
  /** The operators up to the output. */
  readonly plan: PlanNode;
  /** Source tables it reads itself (a view over views reads none: the views in `dependsOn` read them). */
  readonly reads: readonly TableRead[];
  /** Declared views it reads. */
  readonly dependsOn: readonly string[];
  readonly sql: string;
  /** Orderings its list serves from an index (`.indexBy`). */
  readonly orderings: readonly Ordering[];
  readonly fingerprint: string;
  /**
   * Where its rows and operator state live in Redis (`<name>~<fingerprint prefix>`): a changed
   * definition gets keys of its own, so it is built beside the old one and swapped in (engine.ts).
   */
  readonly storage: string;
  /** A retired definition kept up to date during a swap: the view it serves (its name is its storage). */
  readonly serves?: string;
  /** Columns read of a table (for schema changes and row images). */
  columnsOf(table: string): readonly string[];
}

export interface Registry {
  /** Deployment name: prefixes every Redis key. */
  readonly name: string;
  /** In dependency order: a view comes after the views it reads. */
  readonly views: readonly CompiledView[];
  readonly byName: ReadonlyMap<string, CompiledView>;
  /** The views reading each table (directly or through other views). */
  readonly byTable: ReadonlyMap<string, readonly CompiledView[]>;
  readonly tables: readonly TableDef[];
}

/** A registry with more views (retired definitions a swap keeps up to date: stored-definitions.ts) after its own. */
export function withViews(registry: Registry, more: readonly CompiledView[]): Registry {
  const views = [...registry.views, ...more];
  return { ...registry, views, byName: new Map(views.map((v) => [v.name, v])), byTable: byTableOf(views) };
}

function byTableOf(views: readonly CompiledView[]): Map<string, CompiledView[]> {
  const byTable = new Map<string, CompiledView[]>();
  for (const v of views)
    for (const r of v.reads) byTable.set(r.table.name, [...(byTable.get(r.table.name) ?? []), v]);
  return byTable;
}

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;
const DEPLOYMENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Validate a config; throws ConfigError listing every problem. */
export function createRegistry(config: Config): Registry {
  const issues: Issue[] = [];
  const tables = new Map<string, TableDef>();

  const name = config?.name ?? 'default';
  if (!DEPLOYMENT_NAME.test(name)) {
    issues.push({
      path: 'name',
      message: `Expected a name of letters, digits, '_' or '-', but found '${name}'`,
    });
  }
  validateSource(config, issues);

  const compiled = new Map<string, CompiledView>();
  if (!config?.views || typeof config.views !== 'object') {
    issues.push({ path: 'views', message: 'Expected an object of views, but found none' });
  } else {
    const entries = Object.entries(config.views);
    if (entries.length === 0) issues.push({ path: 'views', message: 'Expected at least one view' });
    const declared = new Map<ViewDef, string>(entries.map(([n, d]) => [d, n]));
    // Compile each view after the views it reads (depth first; a cycle is an issue).
    const visiting = new Set<string>();
    const visit = (viewName: string, def: ViewDef): CompiledView | null => {
      const done = compiled.get(viewName);
      if (done) return done;
      if (visiting.has(viewName)) {
        issues.push({
          path: `views.${viewName}`,
          message: `Expected views that do not read each other in a cycle, but ${viewName} reads itself through other views`,
        });
        return null;
      }
      visiting.add(viewName);
      const view = compileView(viewName, def, issues, tables, declared, (n) => visit(n, config.views[n]!));
      visiting.delete(viewName);
      if (view) compiled.set(viewName, view);
      return view;
    };
    for (const [viewName, def] of entries) visit(viewName, def);
  }
  validateApiOptions(config?.api, compiled, issues);
  validateRedisOptions(config?.redis, issues);
  validateReactions(config?.reactions, config?.views, issues);
  if (issues.length > 0) throw new ConfigError(issues);

  const views = [...compiled.values()];
  return Object.freeze({
    name,
    views,
    byName: new Map(views.map((v) => [v.name, v])),
    byTable: byTableOf(views),
    tables: [...tables.values()],
  });
}

function validateSource(config: Config, issues: Issue[]): void {
  const source = config?.source;
  if (!source || typeof source !== 'object') {
    issues.push({
      path: 'source',
      message: 'Expected a source, e.g. source.postgres({ url }), but found none',
    });
    return;
  }
  if (source.kind === 'postgres') {
    for (const field of ['slot', 'publication'] as const) {
      const value = source[field];
      if (value !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
        issues.push({
          path: `source.${field}`,
          message: `Expected a lower-case PostgreSQL identifier (a-z, 0-9, _), but found '${value}'`,
        });
      }
    }
  } else if (source.kind === 'kafka') {
    if (!source.topicPrefix) {
      issues.push({
        path: 'source.topicPrefix',
        message: "Expected Debezium's topic.prefix, but found none",
      });
    }
  } else {
    issues.push({
      path: 'source.kind',
      message: `Expected 'postgres' or 'kafka', but found '${String((source as { kind?: unknown }).kind)}'`,
    });
  }
}

function validateTable(t: TableDef, path: string, issues: Issue[], tables: Map<string, TableDef>): boolean {
  const before = issues.length;
  if (
    typeof t?.name !== 'string' ||
    !t.name.split('.').every((p) => SQL_IDENT.test(p)) ||
    t.name.split('.').length !== 2
  ) {
    issues.push({
      path,
      message: `Expected a schema-qualified table name like 'public.orders', but found '${t?.name}'`,
    });
  }
  for (const [column, info] of Object.entries(t?.columns ?? {})) {
    if (!isColumnType(info.type)) {
      issues.push({
        path: `${path}.columns.${column}`,
        message: `Expected a column type (${['int4', 'int8', 'numeric', 'text', 'timestamptz', '…'].join(', ')}), but found '${String(t.specs[column])}'`,
      });
    }
  }
  if (!t?.key?.length)
    issues.push({ path: `${path}.key`, message: 'Expected a primary key (options.key), but found none' });
  for (const k of t?.key ?? []) {
    const info = t.columns[k];
    if (!info)
      issues.push({
        path: `${path}.key`,
        message: `Expected key column '${k}' to be a declared column of ${t.name}`,
      });
    else if (info.nullable)
      issues.push({
        path: `${path}.key`,
        message: `Expected key column '${k}' to be NOT NULL, but it is declared '${String(t.specs[k])}'`,
      });
  }
  const known = tables.get(t?.name);
  if (
    known &&
    known !== t &&
    JSON.stringify([known.columns, known.key]) !== JSON.stringify([t.columns, t.key])
  ) {
    issues.push({
      path,
      message: `Table ${t.name} is declared twice with different columns or keys; declare it once and reuse it`,
    });
  }
  if (issues.length === before && !known) tables.set(t.name, t);
  return issues.length === before;
}

/** A source of a view as compiling sees it: its columns, and whether a left join may leave it NULL. */
interface ScopeSource {
  readonly ref: SourceRef;
  /** 'public.orders', or 'view revenueByCustomer'. */
  readonly label: string;
  readonly columns: ReadonlyMap<string, { readonly type: ColumnType; readonly nullable: boolean }>;
  /** Key columns: a table's primary key, a view's key fields. */
  readonly key: readonly string[];
  readonly producer: CompiledView | null;
}

/** Resolves column references for validation (checkNode); returns the problem, or null. */
interface Scope {
  resolve(node: ColumnNode): string | null;
}

function compileView(
  name: string,
  def: ViewDef,
  issues: Issue[],
  tables: Map<string, TableDef>,
  declared: ReadonlyMap<ViewDef, string>,
  compileDeclared: (name: string) => CompiledView | null,
): CompiledView | null {
  const path = `views.${name}`;
  const before = issues.length;
  if (!GRAPHQL_NAME.test(name) || name.startsWith('__')) {
    issues.push({
      path,
      message: `Expected a view name usable in GraphQL ([_A-Za-z][_0-9A-Za-z]*), but found '${name}'`,
    });
  }
  if (def?.kind !== 'view') {
    const hint =
      def && typeof (def as { select?: unknown }).select === 'function'
        ? ' (did you forget .select(…)?)'
        : '';
    issues.push({
      path,
      message: `Expected a view built with view(table)….select(…), but found ${typeof def}${hint}`,
    });
    return null;
  }

  // --- sources
  const sources = new Map<string, ScopeSource>();
  [def.from, ...def.joins.map((j) => j.source)].forEach((ref, i) => {
    const at = i === 0 ? `${path}.from` : `${path}.joins.${i - 1}`;
    if (sources.has(ref.alias)) {
      issues.push({
        path: at,
        message: `Expected a distinct name for each source, but '${ref.alias}' is used twice; name a table joined with itself with .as('other')`,
      });
      return;
    }
    if (ref.table) {
      if (!validateTable(ref.table, at, issues, tables)) return;
      const columns = new Map(Object.entries(ref.table.columns));
      sources.set(ref.alias, { ref, label: ref.table.name, columns, key: ref.table.key, producer: null });
    } else if (ref.view) {
      const producerName = declared.get(ref.view);
      if (producerName === undefined) {
        issues.push({
          path: at,
          message:
            'Expected a view declared in this config (declare it among the views, then read it with view(thatView)), but found one that is not',
        });
        return;
      }
      const producer = compileDeclared(producerName);
      if (!producer) return;
      const columns = new Map(producer.fields.map((f) => [f.name, { type: f.type, nullable: f.nullable }]));
      sources.set(ref.alias, {
        ref,
        label: `view ${producerName}`,
        columns,
        key: producer.keyFields.map((f) => f.name),
        producer,
      });
    } else issues.push({ path: at, message: 'Expected a table or a view to read, but found none' });
  });
  if (issues.length > before) return null;

  const nullableSide = new Set(def.joins.filter((j) => j.kind === 'left').map((j) => j.source.alias));
  const sourceScope: Scope = {
    resolve(node) {
      const single = sources.size === 1 ? [...sources.values()][0]! : null;
      const source = node.source === undefined ? single : sources.get(node.source);
      if (!source)
        return `Expected a column of one of the view's sources (${[...sources.keys()].join(', ')}), but found '${node.column}' of '${node.source}'`;
      if ((node as { undeclared?: boolean }).undeclared || !source.columns.has(node.column)) {
        const hint = closest(node.column, [...source.columns.keys()]);
        return `Expected a column of ${source.label}, but found '${node.column}'${hint ? ` (did you mean '${hint}'?)` : ''}`;
      }
      return null;
    },
  };
  const check = (
    node: AnyNode | null | undefined,
    at: string,
    allowAggregate: boolean,
    scope = sourceScope,
  ): void => checkNode(node, scope, `${path}.${at}`, allowAggregate, issues);

  if (def.where) {
    check(def.where, 'where', false);
    if (def.where.type !== 'bool')
      issues.push({
        path: `${path}.where`,
        message: `Expected a boolean predicate, but found an expression of type ${def.where.type}`,
      });
  }
  def.joins.forEach((j, i) => check(j.on, `joins.${i}.on`, false));

  // --- output fields
  const seen = new Set<string>();
  const fields: OutputField[] = [];
  const addField = (f: SelectField, at: string): void => {
    if (!GRAPHQL_NAME.test(f.name) || f.name.startsWith('__')) {
      issues.push({
        path: `${path}.${at}.${f.name}`,
        message: `Expected a field name usable in GraphQL, but found '${f.name}'`,
      });
    }
    if (f.name === 'and' || f.name === 'or') {
      issues.push({
        path: `${path}.${at}.${f.name}`,
        message: `Expected a field name other than 'and' and 'or' (a list's where combines conditions with them), but found '${f.name}': name it otherwise in groupBy or select`,
      });
    }
    if (seen.has(f.name))
      issues.push({ path: `${path}.${at}.${f.name}`, message: `Field '${f.name}' is defined twice` });
    seen.add(f.name);
    if (f.node) fields.push({ name: f.name, type: f.node.type, nullable: f.node.nullable, key: false });
  };
  const aggregateNodes: { name: string; node: AggregateNode }[] = [];
  if (def.groupBy) {
    if (def.groupBy.length === 0)
      issues.push({ path: `${path}.groupBy`, message: 'Expected at least one group field' });
    for (const g of def.groupBy) {
      check(g.node, `groupBy.${g.name}`, false);
      if (g.node?.type === 'json' || g.node?.type === 'jsonb') {
        issues.push({
          path: `${path}.groupBy.${g.name}`,
          message: 'Expected a groupable type, but found json (group by a text or number expression)',
        });
      }
      addField(g, 'groupBy');
    }
    for (const s of def.select ?? []) {
      check(s.node, `select.${s.name}`, true);
      if (s.node && s.node.kind !== 'aggregate') {
        issues.push({
          path: `${path}.select.${s.name}`,
          message: `Expected an aggregate (count, sum, avg, min, max, countDistinct, boolAnd, boolOr) in a grouped view, but found a ${s.node.kind}; group fields belong in groupBy`,
        });
        continue;
      }
      addField(s, 'select');
      if (s.node) {
        checkAggregate(s.node, `${path}.select.${s.name}`, issues);
        aggregateNodes.push({ name: s.name, node: s.node });
      }
    }
  } else if (def.select) {
    if (def.select.length === 0)
      issues.push({ path: `${path}.select`, message: 'Expected at least one selected field' });
    for (const s of def.select) {
      check(s.node, `select.${s.name}`, false);
      addField(s, 'select');
    }
  } else {
    if (def.joins.length > 0)
      issues.push({ path: `${path}.select`, message: 'Expected a select(…) in a view that joins sources' });
    for (const f of viewFields(def)) addField(f, 'select');
  }
  if (issues.length > before) return null;

  const outputScope: Scope = {
    resolve(node) {
      if (node.source !== '$')
        return `Expected a field of ${name}'s own rows here, but found a column of ${node.table}`;
      if ((node as { undeclared?: boolean }).undeclared || !seen.has(node.column)) {
        const hint = closest(node.column, [...seen]);
        return `Expected a field of ${name}, but found '${node.column}'${hint ? ` (did you mean '${hint}'?)` : ''}`;
      }
      return null;
    },
  };
  if (def.groupFilter) {
    if (!def.groupBy)
      issues.push({ path: `${path}.having`, message: 'Expected having(…) after groupBy(…).select(…)' });
    check(def.groupFilter, 'having', false, outputScope);
  }
  if (def.order) {
    if (def.order.length === 0)
      issues.push({ path: `${path}.orderBy`, message: 'Expected at least one order term' });
    def.order.forEach((o, i) => check(o.node, `orderBy.${i}`, false, outputScope));
    def.per?.forEach((p, i) => check(p, `limit.per.${i}`, false, outputScope));
    if (!Number.isInteger(def.limit) || (def.limit ?? 0) < 1)
      issues.push({
        path: `${path}.limit`,
        message: `Expected a positive whole limit, but found ${def.limit}`,
      });
  }
  if (issues.length > before) return null;

  // --- the key
  let keyNames: string[];
  if (def.groupBy) keyNames = def.groupBy.map((g) => g.name);
  else {
    keyNames = [];
    const selected = viewFields(def);
    for (const [alias, source] of sources) {
      const join = def.joins.find((j) => j.source.alias === alias);
      if (join && joinedOnWholeKey(join.on, alias, source.key)) continue; // at most one row per row before it
      for (const column of source.key) {
        const f = selected.find(
          (s) => s.node?.kind === 'column' && s.node.column === column && (s.node.source ?? alias) === alias,
        );
        if (!f) {
          const what = source.producer
            ? `key field '${column}' of ${source.label}`
            : `primary key column '${column}' of ${source.label}`;
          issues.push({
            path: `${path}.select`,
            message: `Expected the ${what}${sources.size > 1 ? ` (as ${alias})` : ''} among the selected fields (a view row needs its key), but found none; add e.g. { ${column}: row.${column} }`,
          });
          continue;
        }
        keyNames.push(f.name);
      }
    }
  }
  if (issues.length > before) return null;
  const keySet = new Set(keyNames);
  const outputFields = fields.map((f) => (keySet.has(f.name) ? { ...f, key: true } : f));
  const keyFields = keyNames.map((k) => outputFields.find((f) => f.name === k)!);
  const orderings = compileOrderings(def.indexes ?? [], outputFields, name, path, issues);
  if (issues.length > before) return null;

  const reads: TableRead[] = [];
  const stateful = def.joins.length > 0 || def.groupBy !== null || def.order !== null;
  for (const [alias, source] of sources) {
    if (!source.ref.table) continue;
    const columns = columnsReadOf(def, alias);
    const existing = reads.findIndex((r) => r.table.name === source.ref.table!.name);
    const read: TableRead = { table: source.ref.table, columns, needsOldRow: stateful };
    if (existing >= 0)
      reads[existing] = { ...read, columns: [...new Set([...reads[existing]!.columns, ...columns])] };
    else reads.push(read);
  }
  const dependsOn = [...sources.values()].flatMap((s) => (s.producer ? [s.producer.name] : []));
  const sql = viewToSql(def, def.groupBy ? [] : keyNames);
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        layout: STATE_LAYOUT_VERSION,
        sql,
        keys: keyNames,
        // An index added or changed is built with the view.
        ...(orderings.length > 0 ? { orderings: orderings.map((o) => o.signature) } : {}),
        // A table's key keys its rows in operator state: another key, another state.
        tables: reads.map((r) => [r.table.name, r.table.columns, r.table.key]),
        producers: dependsOn.map((d) => compileDeclared(d)?.fingerprint),
      }),
    )
    .digest('hex')
    .slice(0, 16);
  const storage = storageOf(name, fingerprint);

  // --- the graph (operator ids, and so their state keys, are the storage's)
  const plan = buildPlan(storage, def, sources, nullableSide, keyFields, aggregateNodes, issues, path);
  if (!plan || issues.length > before) return null;
  return {
    name,
    storage,
    definition: def,
    kind: def.order ? 'topN' : def.groupBy ? 'aggregate' : 'rows',
    fields: outputFields,
    keyFields,
    keyTypes: keyFields.map((f) => f.type),
    plan,
    reads,
    dependsOn,
    sql,
    orderings,
    fingerprint,
    columnsOf: (table) => reads.find((r) => r.table.name === table)?.columns ?? [],
  };
}

/** Whether an ON predicate pins every key column of `alias` to an expression of the sources before it (at most one match). */
function joinedOnWholeKey(on: ExprNode, alias: string, key: readonly string[]): boolean {
  const pinned = new Set<string>();
  for (const c of conjuncts(on)) {
    if (c.kind !== 'call' || c.fn !== 'eq') continue;
    const [a, b] = c.args;
    for (const [mine, other] of [
      [a, b],
      [b, a],
    ] as const) {
      if (
        mine?.kind === 'column' &&
        mine.source === alias &&
        other &&
        !aliasesOf(other).has(alias) &&
        aliasesOf(other).size > 0
      )
        pinned.add(mine.column);
    }
  }
  return key.every((k) => pinned.has(k));
}

/** The conjuncts of a predicate (a AND b AND c → [a, b, c]). */
function conjuncts(node: ExprNode | null): ExprNode[] {
  if (!node) return [];
  if (node.kind === 'call' && node.fn === 'and') return node.args.flatMap(conjuncts);
  return [node];
}

function andAll(nodes: readonly ExprNode[]): ExprNode {
  return nodes.length === 1
    ? nodes[0]!
    : { kind: 'call', fn: 'and', args: nodes, type: 'bool', nullable: nodes.some((n) => n.nullable) };
}

/** Every node of an expression tree, children included (any node kind: arguments, branches, …). */
function walk(node: unknown, visit: (n: AnyNode) => void): void {
  if (Array.isArray(node)) return node.forEach((n) => walk(n, visit));
  if (!node || typeof node !== 'object' || typeof (node as { kind?: unknown }).kind !== 'string') return;
  visit(node as AnyNode);
  for (const value of Object.values(node)) if (value && typeof value === 'object') walk(value, visit);
}

/** A copy of an expression with every column reference rewritten (any node kind). */
function mapColumns<N>(node: N, f: (c: ColumnNode) => ColumnNode): N {
  if (Array.isArray(node)) return node.map((n) => mapColumns(n, f)) as N;
  if (!node || typeof node !== 'object' || typeof (node as { kind?: unknown }).kind !== 'string') return node;
  if ((node as unknown as { kind: string }).kind === 'column') return f(node as unknown as ColumnNode) as N;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = v && typeof v === 'object' ? mapColumns(v, f) : v;
  return out as N;
}

function aliasesOf(node: AnyNode | null): Set<string> {
  const out = new Set<string>();
  walk(node, (n) => {
    if (n.kind === 'column' && n.source !== undefined && n.source !== '$') out.add(n.source);
  });
  return out;
}

/** The columns of source `alias` a view's expressions read. */
function columnsReadOf(def: ViewDef, alias: string): string[] {
  const out = new Set<string>();
  const visit = (n: AnyNode): void => {
    if (n.kind === 'column' && (n.source ?? alias) === alias && n.source !== '$') out.add(n.column);
  };
  walk(def.where, visit);
  for (const j of def.joins) walk(j.on, visit);
  for (const f of viewFields(def)) walk(f.node, visit);
  return [...out];
}

/** A column of a source, as rows carry it in the graph: `<alias>.<column>`; an output field by its name. */
function bind<N>(node: N, defaultAlias: string): N {
  return mapColumns(node, (c) => ({
    ...c,
    column: c.source === '$' ? c.column : `${c.source ?? defaultAlias}.${c.column}`,
  }));
}

function buildPlan(
  name: string /* the view's storage: operator ids start with it */,
  def: ViewDef,
  sources: ReadonlyMap<string, ScopeSource>,
  nullableSide: ReadonlySet<string>,
  keyFields: readonly OutputField[],
  aggregateNodes: readonly { name: string; node: AggregateNode }[],
  issues: Issue[],
  path: string,
): PlanNode | null {
  const main = def.from.alias;
  const b = <N>(node: N): N => bind(node, main);
  const where = conjuncts(def.where);
  const pushed = new Set<ExprNode>();
  const filtered = (node: PlanNode, predicates: readonly ExprNode[], id: string): PlanNode =>
    predicates.length === 0 ? node : { kind: 'filter', id, input: node, predicate: b(andAll(predicates)) };

  /** A source's rows: a scan (or another view's output), with the filters that read only it. */
  const base = (alias: string, extra: readonly ExprNode[]): PlanNode => {
    const source = sources.get(alias)!;
    const node: PlanNode = source.producer
      ? {
          kind: 'view',
          id: `${name}/view:${alias}`,
          view: source.producer.name,
          alias,
          fields: source.producer.fields.map((f) => f.name),
        }
      : {
          kind: 'scan',
          id: `${name}/scan:${alias}`,
          table: source.ref.table!,
          alias,
          columns: columnsReadOf(def, alias),
        };
    const own = nullableSide.has(alias) ? [] : where.filter((c) => sameSet(aliasesOf(c), [alias]));
    for (const c of own) pushed.add(c);
    return filtered(node, [...own, ...extra], `${name}/filter:${alias}`);
  };

  let plan = base(main, []);
  const before = new Set([main]);
  for (const [i, join] of def.joins.entries()) {
    const alias = join.source.alias;
    const pairs: { left: ExprNode; right: ExprNode }[] = [];
    const rightOnly: ExprNode[] = [];
    const residual: ExprNode[] = [];
    for (const c of conjuncts(join.on)) {
      const used = aliasesOf(c);
      if (c.kind === 'call' && c.fn === 'eq') {
        const [x, y] = c.args as [ExprNode, ExprNode];
        const ax = aliasesOf(x);
        const ay = aliasesOf(y);
        if (sameSet(ay, [alias]) && ax.size > 0 && [...ax].every((a) => before.has(a))) {
          pairs.push({ left: x, right: y });
          continue;
        }
        if (sameSet(ax, [alias]) && ay.size > 0 && [...ay].every((a) => before.has(a))) {
          pairs.push({ left: y, right: x });
          continue;
        }
      }
      if (sameSet(used, [alias])) rightOnly.push(c);
      else if (join.kind === 'inner') residual.push(c);
      else {
        issues.push({
          path: `${path}.joins.${i}.on`,
          message: `Expected a left join's ON to be equalities between ${alias} and earlier sources (and conditions on ${alias} alone), but found ${exprToSql(c)}; move it to where(…)`,
        });
      }
    }
    if (pairs.length === 0) {
      issues.push({
        path: `${path}.joins.${i}.on`,
        message: `Expected at least one equality between ${alias} and an earlier source (an equi-join), but found ${exprToSql(join.on)}`,
      });
      return null;
    }
    const right = base(alias, rightOnly);
    plan = {
      kind: 'join',
      id: `${name}/join:${alias}`,
      type: join.kind,
      left: plan,
      right,
      on: pairs.map((p) => ({ left: b(p.left), right: b(p.right) })),
      keyTypes: pairs.map((p) => joinKeyType(p.left.type, p.right.type)),
      rightColumns: sources.get(alias)!.producer
        ? sources.get(alias)!.producer!.fields.map((f) => `${alias}.${f.name}`)
        : columnsReadOf(def, alias).map((c) => `${alias}.${c}`),
    };
    plan = filtered(plan, residual, `${name}/on:${alias}`);
    before.add(alias);
  }
  plan = filtered(
    plan,
    where.filter((c) => !pushed.has(c)),
    `${name}/where`,
  );

  const fields = viewFields(def);
  if (def.groupBy) {
    const groups = def.groupBy.map((g) => ({ name: g.name, node: b(g.node as ExprNode) }));
    const aggregates = aggregateNodes.map((a) => ({ name: a.name, node: b(a.node) }));
    plan =
      aggregateBelowJoin(name, plan, groups, aggregates, reduceNode) ??
      reduceNode(`${name}/reduce`, plan, groups, aggregates);
    if (def.groupFilter)
      plan = { kind: 'filter', id: `${name}/having`, input: plan, predicate: b(def.groupFilter) };
  } else {
    plan = {
      kind: 'project',
      id: `${name}/project`,
      input: plan,
      fields: fields.map((f) => ({ name: f.name, node: b(f.node as ExprNode) })),
    };
  }
  if (def.order && def.limit !== null) {
    plan = {
      kind: 'topN',
      id: `${name}/topN`,
      input: plan,
      partition: (def.per ?? []).map((p) => b(p)),
      partitionTypes: (def.per ?? []).map((p) => p.type),
      order: def.order.map((o) => ({ node: b(o.node), desc: o.desc })),
      limit: def.limit,
      keyFields: keyFields.map((k) => ({ name: k.name, type: k.type })),
    };
  }
  return plan;
}

function sameSet(set: ReadonlySet<string>, items: readonly string[]): boolean {
  return set.size === items.length && items.every((i) => set.has(i));
}

/** One encoding for both sides of a join key (numbers of any type compare by value). */
function joinKeyType(a: ColumnType, b: ColumnType): ColumnType {
  if (a === b) return a;
  if (isNumericType(a) && isNumericType(b)) return 'numeric';
  return a;
}

function checkAggregate(node: AggregateNode, path: string, issues: Issue[]): void {
  const argType = node.arg?.type;
  if ((node.fn === 'sum' || node.fn === 'avg') && (!argType || !isNumericType(argType))) {
    issues.push({
      path,
      message: `Expected ${node.fn}() of a number, but found an expression of type ${argType}`,
    });
  }
  if (
    (node.fn === 'min' || node.fn === 'max') &&
    (!argType || argType === 'json' || argType === 'jsonb' || argType === 'bytea')
  ) {
    issues.push({ path, message: `Expected ${node.fn}() of an orderable type, but found ${argType}` });
  }
  if (node.fn === 'countDistinct' && (argType === 'json' || argType === 'jsonb')) {
    issues.push({
      path,
      message: `Expected countDistinct() of a comparable type, but found ${argType} (count a text or number expression)`,
    });
  }
  if ((node.fn === 'boolAnd' || node.fn === 'boolOr') && argType !== 'bool') {
    issues.push({
      path,
      message: `Expected ${node.fn}() of a boolean, but found an expression of type ${argType}`,
    });
  }
}

/** One accumulator per (kind, expression): sum/avg/count of x share a sum, min/max of x share candidates. */
/** A reduce node: the groups, and the aggregates compiled into the accumulators they share. */
function reduceNode(
  id: string,
  input: PlanNode,
  groups: readonly { name: string; node: ExprNode }[],
  aggregateNodes: readonly { name: string; node: AggregateNode }[],
): PlanNode {
  const { aggregates, accumulators } = compileAccumulators(aggregateNodes);
  return { kind: 'reduce', id, input, groups, groupTypes: groups.map((g) => g.node.type), aggregates, accumulators };
}

function compileAccumulators(nodes: readonly { name: string; node: AggregateNode }[]): {
  aggregates: CompiledAggregate[];
  accumulators: Accumulator[];
} {
  const accumulators: Accumulator[] = [];
  const index = new Map<string, number>();
  const summed = new Set(
    nodes.filter((n) => n.node.fn === 'sum' || n.node.fn === 'avg').map((n) => exprToSql(n.node.arg!)),
  );
  const find = (key: string, make: () => Accumulator): number => {
    let i = index.get(key);
    if (i === undefined) {
      i = accumulators.push(make()) - 1;
      index.set(key, i);
    }
    return i;
  };
  const aggregates = nodes.map(({ name, node }): CompiledAggregate => {
    const base = { name, fn: node.fn, arg: node.arg, type: node.type };
    if (!node.arg) return { ...base, accumulator: null };
    const arg = node.arg;
    const sql = exprToSql(arg);
    const float = isFloatType(arg.type);
    switch (node.fn) {
      case 'count':
        if (summed.has(sql))
          return {
            ...base,
            accumulator: find(`sum ${sql}`, () => ({ kind: float ? 'floatSum' : 'sum', arg })),
          };
        return { ...base, accumulator: find(`count ${sql}`, () => ({ kind: 'count', arg })) };
      case 'sum':
      case 'avg':
        return {
          ...base,
          accumulator: find(`sum ${sql}`, () => ({ kind: float ? 'floatSum' : 'sum', arg })),
        };
      case 'min':
      case 'max': {
        const i = find(`candidates ${sql}`, () => ({ kind: 'candidates', arg, min: false, max: false }));
        const candidates = accumulators[i] as Extract<Accumulator, { kind: 'candidates' }>;
        accumulators[i] = { ...candidates, [node.fn]: true };
        return { ...base, accumulator: i };
      }
      case 'countDistinct':
        return { ...base, accumulator: find(`distinct ${sql}`, () => ({ kind: 'distinct', arg })) };
      case 'boolAnd':
      case 'boolOr':
        return { ...base, accumulator: find(`bool ${sql}`, () => ({ kind: 'bool', arg })) };
    }
  });
  return { aggregates, accumulators };
}

/** Check one expression tree: columns the scope knows, compatible types, aggregates only where allowed. */
function checkNode(
  node: AnyNode | null | undefined,
  t: Scope,
  path: string,
  allowAggregate: boolean,
  issues: Issue[],
): void {
  if (!node) {
    issues.push({ path, message: 'Expected an expression, but found none' });
    return;
  }
  switch (node.kind) {
    case 'column': {
      const problem = t.resolve(node);
      if (problem) issues.push({ path, message: problem });
      return;
    }
    case 'literal': {
      const problem = (node as { problem?: string }).problem;
      if (problem) issues.push({ path, message: problem });
      return;
    }
    case 'aggregate':
      if (!allowAggregate)
        issues.push({
          path,
          message: `Expected a plain expression, but found ${node.fn}(); aggregates belong in the select of a grouped view`,
        });
      if (node.arg) checkNode(node.arg, t, path, false, issues);
      return;
    case 'call': {
      for (const arg of node.args) checkNode(arg, t, path, false, issues);
      const types = node.args.map((a) => a?.type);
      const [a, b] = types;
      if (['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in'].includes(node.fn) && a) {
        for (const other of types.slice(1)) {
          if (other && !comparable(a, other)) {
            issues.push({
              path,
              message: `Expected comparable types in ${node.fn}(), but found ${a} and ${other}`,
            });
          }
        }
        if ((a === 'json' || a === 'jsonb') && node.fn !== 'eq' && node.fn !== 'ne') {
          issues.push({ path, message: `Expected an orderable type in ${node.fn}(), but found ${a}` });
        }
      }
      if (
        ['add', 'sub', 'mul', 'div'].includes(node.fn) &&
        a &&
        b &&
        !(isNumericType(a) && isNumericType(b))
      ) {
        issues.push({ path, message: `Expected numbers in ${node.fn}(), but found ${a} and ${b}` });
      }
      if (['and', 'or', 'not'].includes(node.fn)) {
        for (const ty of types)
          if (ty && ty !== 'bool')
            issues.push({ path, message: `Expected boolean operands in ${node.fn}(), but found ${ty}` });
      }
      checkFunctionArgs(node, path, issues);
      return;
    }
  }
}

/** The argument types of mod, between, like, caseWhen, length, abs, round, cast and dateTrunc. */
function checkFunctionArgs(node: CallNode, path: string, issues: Issue[]): void {
  const args = node.args.filter((a): a is ExprNode => !!a);
  if (args.length !== node.args.length) return; // reported as a missing expression
  const [x, y] = args;
  const problem = (message: string): void => void issues.push({ path, message });
  const isIntegerOrNumeric = (t: ColumnType): boolean =>
    t === 'int2' || t === 'int4' || t === 'int8' || t === 'numeric';
  switch (node.fn) {
    case 'mod':
      if (x && y && !(isIntegerOrNumeric(x.type) && isIntegerOrNumeric(y.type))) {
        problem(`Expected integers or numerics in mod(), but found ${x.type} and ${y.type}`);
      }
      return;
    case 'between':
      for (const bound of args.slice(1)) {
        if (x && !comparable(x.type, bound.type))
          problem(`Expected comparable types in between(), but found ${x.type} and ${bound.type}`);
      }
      if (x && (x.type === 'json' || x.type === 'jsonb' || x.type === 'bytea'))
        problem(`Expected an orderable type in between(), but found ${x.type}`);
      return;
    case 'like':
    case 'notLike':
      if (x && !isTextType(x.type)) problem(`Expected text in ${node.fn}(), but found ${x.type}`);
      if (y && y.type !== 'text' && y.type !== 'varchar')
        problem(`Expected a text pattern in ${node.fn}(), but found ${y.type}`);
      if (y?.kind === 'literal' && typeof y.value === 'string') {
        const issue = likePatternProblem(y.value);
        if (issue) problem(issue);
      }
      return;
    case 'case': {
      const hasElse = args.length % 2 === 1;
      const conditions = args.filter((_, i) => i % 2 === 0 && !(hasElse && i === args.length - 1));
      for (const c of conditions)
        if (c.type !== 'bool') problem(`Expected a boolean condition in caseWhen(), but found ${c.type}`);
      // The branch types in PostgreSQL's order: the ELSE first.
      const values = args.filter((_, i) => i % 2 === 1);
      if (hasElse) values.unshift(args[args.length - 1]!);
      let type: ColumnType | null = null;
      for (const v of values) {
        const common: ColumnType | null = type === null ? v.type : commonType(type, v.type);
        if (common === null)
          problem(`Expected branches of one type in caseWhen(), but found ${type} and ${v.type}`);
        else type = common;
      }
      return;
    }
    case 'length':
      if (x && !isTextType(x.type)) problem(`Expected text in length(), but found ${x.type}`);
      return;
    case 'abs':
      if (x && !isNumericType(x.type)) problem(`Expected a number in abs(), but found ${x.type}`);
      return;
    case 'round':
      if (x && !isNumericType(x.type)) problem(`Expected a number in round(), but found ${x.type}`);
      else if (x && y && isFloatType(x.type)) {
        problem(
          `Expected a numeric or integer in round(x, digits), but found ${x.type} (PostgreSQL has no round(${x.type}, integer)); cast it to numeric first`,
        );
      }
      if (y && !(y.kind === 'literal' && typeof y.value === 'number' && Number.isInteger(y.value))) {
        problem(
          `Expected round()'s digits to be an integer literal, but found ${y.kind === 'literal' ? `'${String(y.value)}'` : `an expression of type ${y.type}`}`,
        );
      }
      return;
    case 'cast': {
      const issue = x ? castProblem(x.type, node.type) : null;
      if (issue) problem(issue);
      return;
    }
    case 'dateTrunc':
      if (!(x?.kind === 'literal' && (TRUNC_UNITS as readonly unknown[]).includes(x.value))) {
        problem(
          `Expected a unit of dateTrunc() (${TRUNC_UNITS.join(', ')}), but found '${x?.kind === 'literal' ? String(x.value) : x?.kind}'`,
        );
      }
      if (y && y.type !== 'date' && y.type !== 'timestamp' && y.type !== 'timestamptz') {
        problem(`Expected a date, timestamp or timestamptz in dateTrunc(), but found ${y.type}`);
      }
      return;
    default:
      return;
  }
}

function comparable(a: ColumnType, b: ColumnType): boolean {
  if (a === b) return true;
  if (isNumericType(a) && isNumericType(b)) return true;
  if (isTextType(a) && isTextType(b)) return true;
  if ((a === 'json' || a === 'jsonb') && (b === 'json' || b === 'jsonb')) return true;
  // Literals of other types (a date written as text) are typed like the column they meet.
  return false;
}

/** The declared name closest to a misspelt one (Levenshtein ≤ 2), for "did you mean". */
function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = distance(name, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** What the views need from each source table, for the source to check and stream. */
export function tableRequirements(registry: Registry): TableRequirement[] {
  return registry.tables.map((t) => ({
    name: t.name,
    columns: t.columns,
    key: t.key,
    needsOldRowFor: (registry.byTable.get(t.name) ?? [])
      .filter((v) => v.reads.some((r) => r.table.name === t.name && r.needsOldRow))
      .map((v) => v.name),
  }));
}
