/**
 * Print a view as the SQL query it maintains. The tests run it on the source database as the
 * oracle, `cdc-views sql` prints it, and it says exactly what a view means: where our evaluation
 * could differ from a naive reading of SQL, the printed query spells our semantics out
 * (`NULLIF(b, 0)` for division, `COLLATE "C"` for text order).
 */
import type { Value } from '../core/values.ts';
import type { AnyNode, ExprNode } from './expr.ts';
import { isTextType } from './expr.ts';
import { INTEGER_MIN } from './functions.ts';
import { viewFields, type SourceRef, type ViewDef } from './define.ts';

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** 'public.orders' → "public"."orders" */
export function quoteTable(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

function quoteLiteral(value: Value, type: ExprNode['type']): string {
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (typeof value === 'number') return type === 'int2' || type === 'int4' ? String(value) : `${value}::${type}`;
  const text = `'${value.replace(/'/g, "''")}'`;
  return type === 'text' ? text : `${text}::${type}`;
}

const OPERATORS = { eq: '=', ne: '<>', lt: '<', lte: '<=', gt: '>', gte: '>=', add: '+', sub: '-', mul: '*' } as const;

export function exprToSql(node: AnyNode): string {
  switch (node.kind) {
    case 'column':
      if (node.source === '$') return outputRef(node.column);
      return node.source ? `${quoteIdent(node.source)}.${quoteIdent(node.column)}` : quoteIdent(node.column);
    case 'literal':
      return quoteLiteral(node.value, node.type);
    case 'aggregate': {
      if (!node.arg) return 'count(*)';
      const arg = exprToSql(node.arg);
      const collated = (node.fn === 'min' || node.fn === 'max') && isTextType(node.arg.type) ? `${arg} COLLATE "C"` : arg;
      switch (node.fn) {
        case 'countDistinct':
          return `count(DISTINCT ${arg})`;
        case 'boolAnd':
          return `bool_and(${arg})`;
        case 'boolOr':
          return `bool_or(${arg})`;
        default:
          return `${node.fn}(${collated})`;
      }
    }
    case 'call': {
      const a = node.args.map(exprToSql);
      switch (node.fn) {
        case 'and':
          return `(${a.join(' AND ')})`;
        case 'or':
          return `(${a.join(' OR ')})`;
        case 'not':
          return `(NOT ${a[0]})`;
        case 'isNull':
          return `(${a[0]} IS NULL)`;
        case 'isNotNull':
          return `(${a[0]} IS NOT NULL)`;
        case 'coalesce':
          return `COALESCE(${a.join(', ')})`;
        case 'lower':
        case 'upper':
          return `${node.fn}(${a[0]})`;
        case 'concat':
          return `(${a.join(' || ')})`;
        case 'in':
          return `(${a[0]} IN (${a.slice(1).join(', ')}))`;
        case 'div':
          return `(${a[0]} / NULLIF(${a[1]}, 0))`;
        case 'mod': {
          // A non-zero number literal needs no guard (and the result is then non-null).
          const divisor = node.args[1]!;
          const safe = divisor.kind === 'literal' && typeof divisor.value === 'number' && divisor.value !== 0 && !Number.isNaN(divisor.value);
          return safe ? `(${a[0]} % ${a[1]})` : `(${a[0]} % NULLIF(${a[1]}, 0))`;
        }
        case 'between':
          if (isTextType(node.args[0]!.type)) return `(${a[0]} COLLATE "C" BETWEEN ${a[1]} AND ${a[2]})`;
          return `(${a[0]} BETWEEN ${a[1]} AND ${a[2]})`;
        case 'like':
          return `(${a[0]} LIKE ${a[1]})`;
        case 'notLike':
          return `(${a[0]} NOT LIKE ${a[1]})`;
        case 'case': {
          let sql = 'CASE';
          for (let i = 0; i + 1 < a.length; i += 2) sql += ` WHEN ${a[i]} THEN ${a[i + 1]}`;
          if (a.length % 2 === 1) sql += ` ELSE ${a[a.length - 1]}`;
          return `${sql} END`;
        }
        case 'length':
        case 'round':
          return `${node.fn}(${a.join(', ')})`;
        case 'abs': {
          // abs of the smallest integer is out of range: NULL, as the view computes it.
          const min = INTEGER_MIN[node.args[0]!.type];
          return min ? `abs(NULLIF(${a[0]}, ${min}))` : `abs(${a[0]})`;
        }
        case 'cast':
          return `CAST(${a[0]} AS ${node.type})`;
        case 'dateTrunc': {
          // timestamptz truncates in UTC whatever the session's TimeZone; a date as a timestamp.
          const type = node.args[1]!.type;
          if (type === 'timestamptz') return `date_trunc(${a[0]}, ${a[1]}, 'UTC')`;
          return `date_trunc(${a[0]}, ${type === 'date' ? `CAST(${a[1]} AS timestamp)` : a[1]})`;
        }
        case 'lt':
        case 'lte':
        case 'gt':
        case 'gte':
          if (isTextType(node.args[0]!.type)) return `(${a[0]} COLLATE "C" ${OPERATORS[node.fn]} ${a[1]})`;
          return `(${a[0]} ${OPERATORS[node.fn]} ${a[1]})`;
        case 'eq':
        case 'ne':
        case 'add':
        case 'sub':
        case 'mul':
          return `(${a[0]} ${OPERATORS[node.fn]} ${a[1]})`;
      }
    }
  }
}

/** How a reference to the view's own output field prints where it appears (HAVING, ORDER BY). */
let outputRef: (field: string) => string = (field) => quoteIdent(field);

function withOutputRefs<T>(resolve: (field: string) => string, print: () => T): T {
  const before = outputRef;
  outputRef = resolve;
  try {
    return print();
  } finally {
    outputRef = before;
  }
}

function sourceSql(source: SourceRef): string {
  if (source.table) return `${quoteTable(source.table.name)} AS ${quoteIdent(source.alias)}`;
  return `(${indent(viewToSql(source.view!))}) AS ${quoteIdent(source.alias)}`;
}

function indent(sql: string): string {
  return `\n  ${sql.replace(/\n/g, '\n  ')}\n`;
}

/** ORDER BY terms: text in code point order, DESC with PostgreSQL's NULLS FIRST default. */
function orderSql(node: ExprNode, desc: boolean): string {
  const sql = exprToSql(node);
  return `${isTextType(node.type) ? `${sql} COLLATE "C"` : sql}${desc ? ' DESC' : ''}`;
}

/**
 * The view as one SELECT that PostgreSQL runs unchanged: its sources joined, filtered, grouped;
 * a top-N as an ORDER BY … LIMIT over it, or row_number() per group, with the view's key as the
 * last ORDER BY column so that ties resolve as the view resolves them.
 */
export function viewToSql(view: ViewDef, keyFields: readonly string[] = []): string {
  const fields = viewFields(view);
  const byName = new Map(fields.map((f) => [f.name, f.node]));
  let sql = `SELECT ${fields.map((f) => `${exprToSql(f.node)} AS ${quoteIdent(f.name)}`).join(', ')}\nFROM ${sourceSql(view.from)}`;
  for (const join of view.joins) sql += `\n${join.kind === 'left' ? 'LEFT JOIN' : 'JOIN'} ${sourceSql(join.source)} ON ${exprToSql(join.on)}`;
  if (view.where) sql += `\nWHERE ${exprToSql(view.where)}`;
  if (view.groupBy) sql += `\nGROUP BY ${view.groupBy.map((g) => exprToSql(g.node)).join(', ')}`;
  if (view.groupFilter) {
    sql += `\nHAVING ${withOutputRefs((field) => exprToSql(byName.get(field)!), () => exprToSql(view.groupFilter!))}`;
  }
  if (view.order === null || view.limit === null) return sql;
  const t = (field: string): string => `"t".${quoteIdent(field)}`;
  const keyOrder = (k: string): string => (isTextType(byName.get(k)!.type) ? `${t(k)} COLLATE "C"` : t(k));
  const order = withOutputRefs(t, () => [...view.order!.map((o) => orderSql(o.node, o.desc)), ...keyFields.map(keyOrder)].join(', '));
  if (!view.per?.length) return `SELECT * FROM (${indent(sql)}) AS "t"\nORDER BY ${order}\nLIMIT ${view.limit}`;
  const per = withOutputRefs(t, () => view.per!.map((p) => exprToSql(p)).join(', '));
  return `SELECT ${fields.map((f) => `"r".${quoteIdent(f.name)}`).join(', ')}\nFROM (SELECT "t".*, row_number() OVER (PARTITION BY ${per} ORDER BY ${order}) AS "__rank"\n  FROM (${indent(sql)}) AS "t") AS "r"\nWHERE "r"."__rank" <= ${view.limit}`;
}
