/**
 * Orderings of a view's list: one or more of its fields, each ascending or descending, ties broken
 * by the view key. The orderings a view declares with `.indexBy(…)` are kept as sorted sets beside
 * its rows (views/operators/output.ts); others are sorted per request, for small views only.
 *
 * An ordering's signature (`revenue:desc,customerId:asc`) names it in Redis keys, cursors and the
 * fingerprint: two spellings of the same order are one ordering.
 */
import type { ColumnType } from '../core/values.ts';
import type { Issue } from './errors.ts';
import type { OrderTerm } from './define.ts';

export interface OrderingTerm {
  readonly field: string;
  readonly type: ColumnType;
  readonly desc: boolean;
}

export interface Ordering {
  /** `field:asc|desc` joined by ',', e.g. `revenue:desc,customerId:asc`. */
  readonly signature: string;
  readonly terms: readonly OrderingTerm[];
}

/** Types an ordering may sort by (json and bytea have no order we keep). */
const UNORDERED: ReadonlySet<ColumnType> = new Set(['json', 'jsonb', 'bytea']);

export function orderingSignature(terms: readonly Pick<OrderingTerm, 'field' | 'desc'>[]): string {
  return terms.map((t) => `${t.field}:${t.desc ? 'desc' : 'asc'}`).join(',');
}

export function isOrderable(type: ColumnType): boolean {
  return !UNORDERED.has(type);
}

/**
 * The orderings declared with `.indexBy(…)`, checked: each term a field of the view (not an
 * expression), of an orderable type, no field twice in one ordering, no ordering twice.
 */
export function compileOrderings(
  declared: readonly (readonly OrderTerm[])[],
  fields: readonly { readonly name: string; readonly type: ColumnType }[],
  viewName: string,
  path: string,
  issues: Issue[],
): Ordering[] {
  const out: Ordering[] = [];
  declared.forEach((terms, i) => {
    const at = `${path}.indexBy.${i}`;
    if (terms.length === 0) {
      issues.push({ path: at, message: 'Expected at least one field to order by' });
      return;
    }
    const compiled: OrderingTerm[] = [];
    for (const term of terms) {
      const node = term?.node;
      const field = node?.kind === 'column' && node.source === '$' && !(node as { undeclared?: boolean }).undeclared ? fields.find((f) => f.name === node.column) : undefined;
      if (!field) {
        const found = node?.kind === 'column' ? `'${node.column}'` : `a ${node?.kind ?? 'missing'} expression`;
        issues.push({ path: at, message: `Expected fields of ${viewName} (${fields.map((f) => f.name).join(', ')}), but found ${found}` });
        return;
      }
      if (!isOrderable(field.type)) {
        issues.push({ path: at, message: `Expected a field with an order, but ${field.name} is ${field.type}` });
        return;
      }
      if (compiled.some((t) => t.field === field.name)) {
        issues.push({ path: at, message: `Expected each field once per ordering, but found ${field.name} twice` });
        return;
      }
      compiled.push({ field: field.name, type: field.type, desc: term.desc });
    }
    const signature = orderingSignature(compiled);
    if (out.some((o) => o.signature === signature)) {
      issues.push({ path: at, message: `Expected each ordering once, but found ${signature} twice` });
      return;
    }
    out.push({ signature, terms: compiled });
  });
  return out;
}
