/**
 * From a user's config to a validated, frozen registry of compiled views.
 *
 * Validation collects every problem before failing (zod style), each with the path it concerns:
 *
 *   ✖ Expected group key 'customerId' to be a column of public.orders, but found 'customer'
 *     → at views.revenueByCustomer.groupBy.customerId
 *
 * A compiled view knows what the planner and the Redis side need: its kind (one row per source row,
 * or one row per group), its key fields and their types, the aggregates and the state each keeps,
 * the columns it reads, its SQL, and a fingerprint that changes whenever its stored state would.
 */
import { createHash } from 'node:crypto';
import type { TableRequirement } from '../ingest/source-options.ts';
import { isColumnType, type ColumnType } from '../ingest/values.ts';
import type { Config, TableDef, ViewDef, SelectField } from './define.ts';
import { ConfigError, type Issue } from './errors.ts';
import {
  columnsOf,
  isFloatType,
  isNumericType,
  isTextType,
  type AggregateFn,
  type AggregateNode,
  type AnyNode,
  type CallNode,
  type ExprNode,
} from './expr.ts';
import { castProblem, commonType, likePatternProblem, TRUNC_UNITS } from './functions.ts';
import { exprToSql, viewToSql } from './sql.ts';

/** Bump when the Redis layout of view state changes: every view is rebuilt. */
export const STATE_LAYOUT_VERSION = 3;

export interface OutputField {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  readonly key: boolean;
}

/**
 * The running state a grouped view keeps per group (see apply/apply-script.ts). Aggregates of one
 * expression share it: sum(x), avg(x) and count(x) read one `sum` accumulator, min(x) and max(x)
 * one candidate multiset.
 */
export type Accumulator =
  | { readonly kind: 'count'; readonly arg: ExprNode }
  | { readonly kind: 'sum'; readonly arg: ExprNode }
  | { readonly kind: 'floatSum'; readonly arg: ExprNode }
  | { readonly kind: 'candidates'; readonly arg: ExprNode; readonly min: boolean; readonly max: boolean };

export interface CompiledAggregate {
  readonly name: string;
  readonly fn: AggregateFn;
  readonly arg: ExprNode | null;
  readonly type: ColumnType;
  /** Index into the view's accumulators; null for count(*), which is the group's row count. */
  readonly accumulator: number | null;
}

interface CompiledBase {
  readonly name: string;
  readonly definition: ViewDef;
  readonly table: TableDef;
  readonly where: ExprNode | null;
  /** Every output field, key fields included, in declaration order. */
  readonly fields: readonly OutputField[];
  readonly keyFields: readonly OutputField[];
  readonly keyTypes: readonly ColumnType[];
  /** Source columns the view reads. */
  readonly columnsRead: readonly string[];
  readonly sql: string;
  readonly fingerprint: string;
}

/** One view row per source row, keyed by the source's primary key. */
export interface RowsView extends CompiledBase {
  readonly kind: 'rows';
  readonly projection: readonly SelectField[];
  /** Source primary-key columns, in the order of keyFields. */
  readonly keyColumns: readonly string[];
}

/** One view row per group. */
export interface AggregateView extends CompiledBase {
  readonly kind: 'aggregate';
  readonly groups: readonly SelectField[];
  readonly aggregates: readonly CompiledAggregate[];
  readonly accumulators: readonly Accumulator[];
}

export type CompiledView = RowsView | AggregateView;

export interface Registry {
  /** Deployment name: prefixes every Redis key. */
  readonly name: string;
  readonly views: readonly CompiledView[];
  readonly byName: ReadonlyMap<string, CompiledView>;
  readonly byTable: ReadonlyMap<string, readonly CompiledView[]>;
  readonly tables: readonly TableDef[];
}

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;
const DEPLOYMENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Validate a config; throws ConfigError listing every problem. */
export function createRegistry(config: Config): Registry {
  const issues: Issue[] = [];
  const views: CompiledView[] = [];
  const tables = new Map<string, TableDef>();

  const name = config?.name ?? 'default';
  if (!DEPLOYMENT_NAME.test(name)) {
    issues.push({ path: 'name', message: `Expected a name of letters, digits, '_' or '-', but found '${name}'` });
  }
  validateSource(config, issues);

  if (!config?.views || typeof config.views !== 'object') {
    issues.push({ path: 'views', message: 'Expected an object of views, but found none' });
  } else {
    if (Object.keys(config.views).length === 0) issues.push({ path: 'views', message: 'Expected at least one view' });
    for (const [viewName, def] of Object.entries(config.views)) {
      const compiled = compileView(viewName, def, issues, tables);
      if (compiled) views.push(compiled);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const byTable = new Map<string, CompiledView[]>();
  for (const v of views) byTable.set(v.table.name, [...(byTable.get(v.table.name) ?? []), v]);
  return Object.freeze({
    name,
    views,
    byName: new Map(views.map((v) => [v.name, v])),
    byTable,
    tables: [...tables.values()],
  });
}

function validateSource(config: Config, issues: Issue[]): void {
  const source = config?.source;
  if (!source || typeof source !== 'object') {
    issues.push({ path: 'source', message: 'Expected a source, e.g. source.postgres({ url }), but found none' });
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
      issues.push({ path: 'source.topicPrefix', message: "Expected Debezium's topic.prefix, but found none" });
    }
  } else {
    issues.push({ path: 'source.kind', message: `Expected 'postgres' or 'kafka', but found '${String((source as { kind?: unknown }).kind)}'` });
  }
}

function validateTable(t: TableDef, path: string, issues: Issue[], tables: Map<string, TableDef>): boolean {
  const before = issues.length;
  if (typeof t?.name !== 'string' || !t.name.split('.').every((p) => SQL_IDENT.test(p)) || t.name.split('.').length !== 2) {
    issues.push({ path, message: `Expected a schema-qualified table name like 'public.orders', but found '${t?.name}'` });
  }
  for (const [column, info] of Object.entries(t?.columns ?? {})) {
    if (!isColumnType(info.type)) {
      issues.push({
        path: `${path}.columns.${column}`,
        message: `Expected a column type (${['int4', 'int8', 'numeric', 'text', 'timestamptz', '…'].join(', ')}), but found '${String(t.specs[column])}'`,
      });
    }
  }
  if (!t?.key?.length) issues.push({ path: `${path}.key`, message: 'Expected a primary key (options.key), but found none' });
  for (const k of t?.key ?? []) {
    const info = t.columns[k];
    if (!info) issues.push({ path: `${path}.key`, message: `Expected key column '${k}' to be a declared column of ${t.name}` });
    else if (info.nullable) issues.push({ path: `${path}.key`, message: `Expected key column '${k}' to be NOT NULL, but it is declared '${String(t.specs[k])}'` });
  }
  const known = tables.get(t?.name);
  if (known && known !== t && JSON.stringify([known.columns, known.key]) !== JSON.stringify([t.columns, t.key])) {
    issues.push({ path, message: `Table ${t.name} is declared twice with different columns or keys; declare it once and reuse it` });
  }
  if (issues.length === before && !known) tables.set(t.name, t);
  return issues.length === before;
}

function compileView(name: string, def: ViewDef, issues: Issue[], tables: Map<string, TableDef>): CompiledView | null {
  const path = `views.${name}`;
  const before = issues.length;
  if (!GRAPHQL_NAME.test(name) || name.startsWith('__')) {
    issues.push({ path, message: `Expected a view name usable in GraphQL ([_A-Za-z][_0-9A-Za-z]*), but found '${name}'` });
  }
  if (def?.kind !== 'view') {
    const hint = def && typeof (def as { select?: unknown }).select === 'function' ? ' (did you forget .select(…)?)' : '';
    issues.push({ path, message: `Expected a view built with view(table)….select(…), but found ${typeof def}${hint}` });
    return null;
  }
  if (!validateTable(def.from, `${path}.from`, issues, tables)) return null;

  const t = def.from;
  const check = (node: AnyNode | null | undefined, at: string, allowAggregate: boolean): void =>
    checkNode(node, t, `${path}.${at}`, allowAggregate, issues);

  if (def.where) {
    check(def.where, 'where', false);
    if (def.where.type !== 'bool') issues.push({ path: `${path}.where`, message: `Expected a boolean predicate, but found an expression of type ${def.where.type}` });
  }
  const seen = new Set<string>();
  const fields: OutputField[] = [];
  const addField = (f: SelectField, at: string, key: boolean): void => {
    if (!GRAPHQL_NAME.test(f.name) || f.name.startsWith('__')) {
      issues.push({ path: `${path}.${at}.${f.name}`, message: `Expected a field name usable in GraphQL, but found '${f.name}'` });
    }
    if (seen.has(f.name)) issues.push({ path: `${path}.${at}.${f.name}`, message: `Field '${f.name}' is defined twice` });
    seen.add(f.name);
    if (f.node) fields.push({ name: f.name, type: f.node.type, nullable: f.node.nullable, key });
  };

  let compiled: CompiledView | null = null;
  if (def.groupBy) {
    if (def.groupBy.length === 0) issues.push({ path: `${path}.groupBy`, message: 'Expected at least one group field' });
    for (const g of def.groupBy) {
      check(g.node, `groupBy.${g.name}`, false);
      if (g.node?.type === 'json' || g.node?.type === 'jsonb') {
        issues.push({ path: `${path}.groupBy.${g.name}`, message: 'Expected a groupable type, but found json (group by a text or number expression)' });
      }
      addField(g, 'groupBy', true);
    }
    const aggregateNodes: { name: string; node: AggregateNode }[] = [];
    for (const s of def.select) {
      check(s.node, `select.${s.name}`, true);
      if (s.node && s.node.kind !== 'aggregate') {
        issues.push({
          path: `${path}.select.${s.name}`,
          message: `Expected an aggregate (count, sum, avg, min, max) in a grouped view, but found a ${s.node.kind}; group fields belong in groupBy`,
        });
        continue;
      }
      addField(s, 'select', false);
      if (s.node) {
        checkAggregate(s.node, `${path}.select.${s.name}`, issues);
        aggregateNodes.push({ name: s.name, node: s.node });
      }
    }
    const { aggregates, accumulators } = compileAccumulators(aggregateNodes);
    const keyFields = fields.filter((f) => f.key);
    compiled = {
      kind: 'aggregate',
      ...base(name, def, fields, keyFields),
      groups: def.groupBy,
      aggregates,
      accumulators,
    };
  } else {
    const keyColumns: string[] = [];
    for (const s of def.select) {
      check(s.node, `select.${s.name}`, false);
      addField(s, 'select', false);
    }
    const keyFields: OutputField[] = [];
    for (const k of t.key) {
      const f = def.select.find((s) => s.node?.kind === 'column' && s.node.column === k);
      if (!f) {
        issues.push({
          path: `${path}.select`,
          message: `Expected the primary key column '${k}' of ${t.name} among the selected fields (a view row needs its key), but found none; add e.g. { ${k}: row.${k} }`,
        });
        continue;
      }
      keyColumns.push(k);
      const i = fields.findIndex((o) => o.name === f.name);
      if (i >= 0) fields[i] = { ...fields[i]!, key: true };
      keyFields.push({ ...fields[i]!, key: true });
    }
    compiled = { kind: 'rows', ...base(name, def, fields, keyFields), projection: def.select, keyColumns };
  }
  if (def.select.length === 0 && !def.groupBy) issues.push({ path: `${path}.select`, message: 'Expected at least one selected field' });
  return issues.length === before ? compiled : null;
}

function base(name: string, def: ViewDef, fields: OutputField[], keyFields: OutputField[]): CompiledBase {
  const read = columnsOf(def.where);
  for (const f of [...(def.groupBy ?? []), ...def.select]) columnsOf(f.node, read);
  const sql = viewToSql(def);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ layout: STATE_LAYOUT_VERSION, sql, keys: keyFields.map((f) => f.name), table: def.from.columns }))
    .digest('hex')
    .slice(0, 16);
  return {
    name,
    definition: def,
    table: def.from,
    where: def.where,
    fields,
    keyFields,
    keyTypes: keyFields.map((f) => f.type),
    columnsRead: [...read],
    sql,
    fingerprint,
  };
}

function checkAggregate(node: AggregateNode, path: string, issues: Issue[]): void {
  const argType = node.arg?.type;
  if ((node.fn === 'sum' || node.fn === 'avg') && (!argType || !isNumericType(argType))) {
    issues.push({ path, message: `Expected ${node.fn}() of a number, but found an expression of type ${argType}` });
  }
  if ((node.fn === 'min' || node.fn === 'max') && (!argType || argType === 'json' || argType === 'jsonb' || argType === 'bytea')) {
    issues.push({ path, message: `Expected ${node.fn}() of an orderable type, but found ${argType}` });
  }
}

/** One accumulator per (kind, expression): sum/avg/count of x share a sum, min/max of x share candidates. */
function compileAccumulators(nodes: readonly { name: string; node: AggregateNode }[]): {
  aggregates: CompiledAggregate[];
  accumulators: Accumulator[];
} {
  const accumulators: Accumulator[] = [];
  const index = new Map<string, number>();
  const summed = new Set(nodes.filter((n) => n.node.fn === 'sum' || n.node.fn === 'avg').map((n) => exprToSql(n.node.arg!)));
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
        if (summed.has(sql)) return { ...base, accumulator: find(`sum ${sql}`, () => ({ kind: float ? 'floatSum' : 'sum', arg })) };
        return { ...base, accumulator: find(`count ${sql}`, () => ({ kind: 'count', arg })) };
      case 'sum':
      case 'avg':
        return { ...base, accumulator: find(`sum ${sql}`, () => ({ kind: float ? 'floatSum' : 'sum', arg })) };
      case 'min':
      case 'max': {
        const i = find(`candidates ${sql}`, () => ({ kind: 'candidates', arg, min: false, max: false }));
        const candidates = accumulators[i] as Extract<Accumulator, { kind: 'candidates' }>;
        accumulators[i] = { ...candidates, [node.fn]: true };
        return { ...base, accumulator: i };
      }
    }
  });
  return { aggregates, accumulators };
}

/** Check one expression tree: declared columns of the view's own table, compatible types, aggregates only where allowed. */
function checkNode(node: AnyNode | null | undefined, t: TableDef, path: string, allowAggregate: boolean, issues: Issue[]): void {
  if (!node) {
    issues.push({ path, message: 'Expected an expression, but found none' });
    return;
  }
  switch (node.kind) {
    case 'column':
      if ((node as { undeclared?: boolean }).undeclared || !(node.column in t.columns)) {
        const hint = closest(node.column, Object.keys(t.columns));
        issues.push({
          path,
          message: `Expected a column of ${t.name}, but found '${node.column}'${hint ? ` (did you mean '${hint}'?)` : ''}`,
        });
      } else if (node.table !== t.name) {
        issues.push({ path, message: `Expected a column of ${t.name}, but found ${node.table}.${node.column} (joins are not supported yet)` });
      }
      return;
    case 'literal': {
      const problem = (node as { problem?: string }).problem;
      if (problem) issues.push({ path, message: problem });
      return;
    }
    case 'aggregate':
      if (!allowAggregate) issues.push({ path, message: `Expected a plain expression, but found ${node.fn}(); aggregates belong in the select of a grouped view` });
      if (node.arg) checkNode(node.arg, t, path, false, issues);
      return;
    case 'call': {
      for (const arg of node.args) checkNode(arg, t, path, false, issues);
      const types = node.args.map((a) => a?.type);
      const [a, b] = types;
      if (['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in'].includes(node.fn) && a) {
        for (const other of types.slice(1)) {
          if (other && !comparable(a, other)) {
            issues.push({ path, message: `Expected comparable types in ${node.fn}(), but found ${a} and ${other}` });
          }
        }
        if ((a === 'json' || a === 'jsonb') && node.fn !== 'eq' && node.fn !== 'ne') {
          issues.push({ path, message: `Expected an orderable type in ${node.fn}(), but found ${a}` });
        }
      }
      if (['add', 'sub', 'mul', 'div'].includes(node.fn) && a && b && !(isNumericType(a) && isNumericType(b))) {
        issues.push({ path, message: `Expected numbers in ${node.fn}(), but found ${a} and ${b}` });
      }
      if (['and', 'or', 'not'].includes(node.fn)) {
        for (const ty of types) if (ty && ty !== 'bool') issues.push({ path, message: `Expected boolean operands in ${node.fn}(), but found ${ty}` });
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
  const isIntegerOrNumeric = (t: ColumnType): boolean => t === 'int2' || t === 'int4' || t === 'int8' || t === 'numeric';
  switch (node.fn) {
    case 'mod':
      if (x && y && !(isIntegerOrNumeric(x.type) && isIntegerOrNumeric(y.type))) {
        problem(`Expected integers or numerics in mod(), but found ${x.type} and ${y.type}`);
      }
      return;
    case 'between':
      for (const bound of args.slice(1)) {
        if (x && !comparable(x.type, bound.type)) problem(`Expected comparable types in between(), but found ${x.type} and ${bound.type}`);
      }
      if (x && (x.type === 'json' || x.type === 'jsonb' || x.type === 'bytea')) problem(`Expected an orderable type in between(), but found ${x.type}`);
      return;
    case 'like':
    case 'notLike':
      if (x && !isTextType(x.type)) problem(`Expected text in ${node.fn}(), but found ${x.type}`);
      if (y && y.type !== 'text' && y.type !== 'varchar') problem(`Expected a text pattern in ${node.fn}(), but found ${y.type}`);
      if (y?.kind === 'literal' && typeof y.value === 'string') {
        const issue = likePatternProblem(y.value);
        if (issue) problem(issue);
      }
      return;
    case 'case': {
      const hasElse = args.length % 2 === 1;
      const conditions = args.filter((_, i) => i % 2 === 0 && !(hasElse && i === args.length - 1));
      for (const c of conditions) if (c.type !== 'bool') problem(`Expected a boolean condition in caseWhen(), but found ${c.type}`);
      // The branch types in PostgreSQL's order: the ELSE first.
      const values = args.filter((_, i) => i % 2 === 1);
      if (hasElse) values.unshift(args[args.length - 1]!);
      let type: ColumnType | null = null;
      for (const v of values) {
        const common: ColumnType | null = type === null ? v.type : commonType(type, v.type);
        if (common === null) problem(`Expected branches of one type in caseWhen(), but found ${type} and ${v.type}`);
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
        problem(`Expected a numeric or integer in round(x, digits), but found ${x.type} (PostgreSQL has no round(${x.type}, integer)); cast it to numeric first`);
      }
      if (y && !(y.kind === 'literal' && typeof y.value === 'number' && Number.isInteger(y.value))) {
        problem(`Expected round()'s digits to be an integer literal, but found ${y.kind === 'literal' ? `'${String(y.value)}'` : `an expression of type ${y.type}`}`);
      }
      return;
    case 'cast': {
      const issue = x ? castProblem(x.type, node.type) : null;
      if (issue) problem(issue);
      return;
    }
    case 'dateTrunc':
      if (!(x?.kind === 'literal' && (TRUNC_UNITS as readonly unknown[]).includes(x.value))) {
        problem(`Expected a unit of dateTrunc() (${TRUNC_UNITS.join(', ')}), but found '${x?.kind === 'literal' ? String(x.value) : x?.kind}'`);
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
    needsOldRowFor: (registry.byTable.get(t.name) ?? []).filter((v) => v.kind === 'aggregate').map((v) => v.name),
  }));
}
