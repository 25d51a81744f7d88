/**
 * The arguments of a view's list beyond paging: `where` (a typed input per view, comparisons typed
 * like each field) and `orderBy` (fields with a direction, ties broken by the key), and the cursor
 * that carries a page's place in its ordering.
 *
 *   input RevenueByCustomerWhere { customerId: IntComparison  revenue: DecimalComparison  …
 *                                  and: [RevenueByCustomerWhere!]  or: [RevenueByCustomerWhere!] }
 *   input RevenueByCustomerOrderBy { field: RevenueByCustomerField!  direction: SortDirection = ASC }
 *
 * A cursor is base64url of `<view>\x1f<ordering signature>\x1f<member>`: a cursor of another view
 * or another ordering is refused, never read as a place in this one.
 */
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLInputObjectType,
  GraphQLList,
  GraphQLNonNull,
  type GraphQLInputFieldConfigMap,
  type GraphQLInputType,
  type GraphQLScalarType,
} from 'graphql';
import { MEMBER_SEPARATOR } from '../core/encoding.ts';
import type { ColumnType } from '../core/values.ts';
import { isOrderable, orderingSignature, type Ordering } from '../views/orderings.ts';
import type { CompiledView } from '../views/registry.ts';
import { PublicError } from './errors.ts';
import { scalarFor } from './scalars.ts';

/** The default of `api.limits.sortInMemoryRows`. */
export const SORT_IN_MEMORY_ROWS = 1000;

export const SortDirection = new GraphQLEnumType({
  name: 'SortDirection',
  values: {
    ASC: { value: 'asc', description: 'Ascending, NULLs last (PostgreSQL ASC).' },
    DESC: { value: 'desc', description: 'Descending, NULLs first (PostgreSQL DESC).' },
  },
});

const comparisons = new Map<string, GraphQLInputObjectType>();

/** `<Scalar>Comparison`: one per scalar, shared by every view (JSON: only isNull). */
function comparisonFor(type: ColumnType): GraphQLInputObjectType {
  const scalar = scalarFor(type) as GraphQLScalarType;
  const name = `${scalar.name}Comparison`;
  let input = comparisons.get(name);
  if (input) return input;
  const isNull = { type: GraphQLBoolean, description: 'true: the field is NULL; false: it is not.' };
  const fields: GraphQLInputFieldConfigMap = isOrderable(type)
    ? {
        eq: { type: scalar, description: 'Equal (never matches NULL).' },
        ne: { type: scalar, description: 'Not equal (never matches NULL, as SQL <>).' },
        lt: { type: scalar },
        lte: { type: scalar },
        gt: { type: scalar },
        gte: { type: scalar },
        in: { type: new GraphQLList(new GraphQLNonNull(scalar)), description: 'Equal to one of these (at most 1000).' },
        isNull,
      }
    : { isNull };
  input = new GraphQLInputObjectType({ name, description: `Comparisons of a ${scalar.name} field, ANDed; values compare as PostgreSQL compares them.`, fields });
  comparisons.set(name, input);
  return input;
}

/** The `where` and `orderBy` input types of one view, for the fields a role may read. */
export function listInputTypes(view: CompiledView, typeName: string, readable: ReadonlySet<string> | null): { where: GraphQLInputObjectType; orderBy: GraphQLInputType | null } {
  const fields = view.fields.filter((f) => readable?.has(f.name) ?? true);
  const where: GraphQLInputObjectType = new GraphQLInputObjectType({
    name: `${typeName}Where`,
    description: `Rows of ${view.name} to keep: every field's comparisons and every and/or hold (NULL matches only isNull: true).`,
    fields: () => ({
      ...Object.fromEntries(fields.map((f) => [f.name, { type: comparisonFor(f.type) }])),
      and: { type: new GraphQLList(new GraphQLNonNull(where)), description: 'All of these hold.' },
      or: { type: new GraphQLList(new GraphQLNonNull(where)), description: 'At least one of these holds (an empty list: none).' },
    }),
  });
  const orderable = fields.filter((f) => isOrderable(f.type));
  if (orderable.length === 0) return { where, orderBy: null };
  const fieldEnum = new GraphQLEnumType({
    name: `${typeName}Field`,
    values: Object.fromEntries(orderable.map((f) => [f.name, { value: f.name }])),
  });
  const orderBy = new GraphQLInputObjectType({
    name: `${typeName}OrderBy`,
    fields: { field: { type: new GraphQLNonNull(fieldEnum) }, direction: { type: SortDirection, defaultValue: 'asc' } },
  });
  return { where, orderBy: new GraphQLList(new GraphQLNonNull(orderBy)) };
}

/** How the indexed orderings read in the schema: 'revenue DESC; orders ASC, customerId DESC'. */
export function describeOrderings(view: CompiledView): string {
  return view.orderings.map((o) => o.terms.map((t) => `${t.field} ${t.desc ? 'DESC' : 'ASC'}`).join(', ')).join('; ');
}

/** The indexBy a user would add to serve this ordering: `.indexBy((r) => [desc(r.revenue), r.country])`. */
export function indexByHint(ordering: Ordering): string {
  return `.indexBy((r) => [${ordering.terms.map((t) => (t.desc ? `desc(r.${t.field})` : `r.${t.field}`)).join(', ')}])`;
}

/**
 * The ordering an orderBy asks for; null for key order (none given, or exactly the key ascending).
 */
export function resolveOrdering(view: CompiledView, orderBy: readonly { field: string; direction?: 'asc' | 'desc' }[] | null | undefined): Ordering | null {
  if (!orderBy || orderBy.length === 0) return null;
  const terms = orderBy.map((o) => {
    const field = view.fields.find((f) => f.name === o.field);
    if (!field) throw new PublicError(`Expected a field of ${view.name} in orderBy, but found '${o.field}'`, 'BAD_USER_INPUT');
    return { field: field.name, type: field.type, desc: o.direction === 'desc' };
  });
  const twice = terms.find((t, i) => terms.findIndex((u) => u.field === t.field) !== i);
  if (twice) throw new PublicError(`Expected each field once in orderBy, but found ${twice.field} twice`, 'BAD_USER_INPUT');
  if (terms.length === view.keyFields.length && terms.every((t, i) => t.field === view.keyFields[i]!.name && !t.desc)) return null;
  const signature = orderingSignature(terms);
  return view.orderings.find((o) => o.signature === signature) ?? { signature, terms };
}

export function encodeCursor(view: CompiledView, ordering: Ordering | null, member: string): string {
  return Buffer.from(`${view.name}\x1f${ordering?.signature ?? ''}\x1f${member}`, 'utf8').toString('base64url');
}

/** A tuple of order terms or key components: each tagged \x01 (value) or \x02, joined by \x00. */
function wellFormedTuple(text: string, parts: number): boolean {
  const split = text.split('\x00');
  return split.length === parts && split.every((p) => p === '\x02' || p === '\x01' || (p.length > 1 && (p[0] === '\x01' || p[0] === '\x02')));
}

/** The member a cursor of this view's list in this ordering stands for; anything else is the client's error, said so. */
export function decodeCursor(view: CompiledView, ordering: Ordering | null, cursor: string): string {
  const text = cursor.length <= 8192 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const [name, signature, member, ...rest] = text.split('\x1f');
  const shown = `'${cursor.slice(0, 40)}${cursor.length > 40 ? '…' : ''}'`;
  const garbage = (): PublicError => new PublicError(`Expected after to be a cursor from a page of ${view.name}List (pageInfo.endCursor or an edge's cursor), but found ${shown}`, 'BAD_USER_INPUT');
  if (rest.length > 0 || member === undefined || Buffer.from(text, 'utf8').toString('base64url') !== cursor) throw garbage();
  if (name !== view.name) throw new PublicError(`Expected after to be a cursor from a page of ${view.name}List, but found one of ${name}List`, 'BAD_USER_INPUT');
  if (signature !== (ordering?.signature ?? '')) {
    const order = (sig: string): string => (sig === '' ? 'key order (no orderBy)' : `orderBy ${sig}`);
    throw new PublicError(`Expected after to be a cursor of ${view.name}List in ${order(ordering?.signature ?? '')}, but found one in ${order(signature ?? '')}: a cursor keeps its place only in its own order`, 'BAD_USER_INPUT');
  }
  if (!(ordering === null ? wellFormedTuple(member, view.keyFields.length) : wellFormedMember(member, ordering, view))) throw garbage();
  return member!;
}

function wellFormedMember(member: string, ordering: Ordering, view: CompiledView): boolean {
  const at = member.indexOf(MEMBER_SEPARATOR);
  return at > 0 && wellFormedTuple(member.slice(0, at), ordering.terms.length) && wellFormedTuple(member.slice(at + MEMBER_SEPARATOR.length), view.keyFields.length);
}
