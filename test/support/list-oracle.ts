/**
 * The oracle of list queries: a `where` and an `orderBy` as GraphQL takes them, printed as SQL over
 * the view's own SQL — `SELECT * FROM (<view sql>) v WHERE … ORDER BY …, <key>` — and a walker that
 * reads every page of a list with `first`/`after`.
 */
import type pg from 'pg';
import { decodePgText, isTextType, type ColumnType, type Value } from '../../core/values.ts';
import type { CompiledView } from '../../views/registry.ts';

export type Comparison = { eq?: Value; ne?: Value; lt?: Value; lte?: Value; gt?: Value; gte?: Value; in?: Value[]; isNull?: boolean };
export type Where = { and?: Where[]; or?: Where[] } & { [field: string]: Comparison | Where[] | undefined };
export type OrderBy = { field: string; direction: 'ASC' | 'DESC' }[];

const CAST: Partial<Record<ColumnType, string>> = { int4: 'int4', int8: 'int8', numeric: 'numeric', timestamptz: 'timestamptz', bool: 'bool' };
const SQL_OPS = { eq: '=', ne: '<>', lt: '<', lte: '<=', gt: '>', gte: '>=' } as const;

function column(view: CompiledView, field: string): string {
  const type = view.fields.find((f) => f.name === field)!.type;
  return isTextType(type) ? `v."${field}" COLLATE "C"` : `v."${field}"`;
}

/** The where as a SQL condition over `v`, its values as parameters. */
export function whereSql(view: CompiledView, where: Where | null, params: unknown[]): string {
  if (where === null) return 'TRUE';
  const parts: string[] = [];
  for (const [name, value] of Object.entries(where)) {
    if (value === undefined) continue;
    if (name === 'and' || name === 'or') {
      const inner = (value as Where[]).map((w) => `(${whereSql(view, w, params)})`);
      parts.push(inner.length === 0 ? (name === 'and' ? 'TRUE' : 'FALSE') : `(${inner.join(name === 'and' ? ' AND ' : ' OR ')})`);
      continue;
    }
    const type = view.fields.find((f) => f.name === name)!.type;
    const param = (v: Value): string => `$${params.push(v)}::${CAST[type] ?? 'text'}`;
    for (const [op, operand] of Object.entries(value as Comparison)) {
      if (op === 'isNull') parts.push(`v."${name}" IS ${operand ? '' : 'NOT '}NULL`);
      else if (op === 'in') {
        const values = operand as Value[];
        parts.push(values.length === 0 ? 'FALSE' : `${column(view, name)} IN (${values.map(param).join(', ')})`);
      } else parts.push(`${column(view, name)} ${SQL_OPS[op as keyof typeof SQL_OPS]} ${param(operand as Value)}`);
    }
  }
  return parts.length === 0 ? 'TRUE' : parts.join(' AND ');
}

/** ORDER BY the terms, then the key ascending (PostgreSQL's NULL placement: last ASC, first DESC). */
export function orderSql(view: CompiledView, orderBy: OrderBy | null): string {
  const terms = (orderBy ?? []).map((o) => `${column(view, o.field)} ${o.direction}`);
  return [...terms, ...view.keyFields.map((k) => `${column(view, k.name)} ASC`)].join(', ');
}

/** The rows the list must return, in order, decoded as the service decodes values. */
export async function expectedRows(db: pg.Client, view: CompiledView, where: Where | null, orderBy: OrderBy | null, extra = 'TRUE'): Promise<Record<string, Value>[]> {
  const params: unknown[] = [];
  const sql = `SELECT * FROM (${view.sql}) v WHERE (${whereSql(view, where, params)}) AND ${extra} ORDER BY ${orderSql(view, orderBy)}`;
  const result = await db.query<Record<string, string | null>>(sql, params);
  return result.rows.map((r) => Object.fromEntries(view.fields.map((f) => [f.name, r[f.name] === null || r[f.name] === undefined ? null : decodePgText(f.type, r[f.name]!)])));
}

export interface ListReply {
  data?: Record<string, { nodes: Record<string, Value>[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; totalCount?: number | null; version: string }>;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** One list request (variables for where, orderBy, first, after). */
export async function listQuery(url: string, view: CompiledView, variables: { where?: Where | null; orderBy?: OrderBy | null; first?: number; after?: string | null }, options: { token?: string; fields?: readonly string[]; totalCount?: boolean } = {}): Promise<ListReply> {
  const type = view.name.charAt(0).toUpperCase() + view.name.slice(1);
  const fields = (options.fields ?? view.fields.map((f) => f.name)).join(' ');
  const query = `query($where: ${type}Where, $orderBy: [${type}OrderBy!], $first: Int, $after: String) {
    ${view.name}List(where: $where, orderBy: $orderBy, first: $first, after: $after) { nodes { ${fields} } pageInfo { hasNextPage endCursor } ${options.totalCount ? 'totalCount' : ''} version } }`;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as ListReply;
}

/** Every page of a list, followed to the end; the first page's totalCount. */
export async function walkList(url: string, view: CompiledView, where: Where | null, orderBy: OrderBy | null, first: number, options: { token?: string; fields?: readonly string[] } = {}): Promise<{ rows: Record<string, Value>[]; totalCount: number | null | undefined; pages: number }> {
  const rows: Record<string, Value>[] = [];
  let after: string | null = null;
  let totalCount: number | null | undefined;
  for (let pages = 1; ; pages++) {
    const reply: ListReply = await listQuery(url, view, { where, orderBy, first, after }, { ...options, totalCount: pages === 1 });
    if (reply.errors) throw new Error(`${view.name}List: ${JSON.stringify(reply.errors)}`);
    const page = reply.data![`${view.name}List`]!;
    if (pages === 1) totalCount = page.totalCount;
    rows.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return { rows, totalCount, pages };
    if (pages > 500) throw new Error(`${view.name}List: more than 500 pages`);
    after = page.pageInfo.endCursor;
  }
}
