/**
 * What a caller may read, modelled on Hasura's select permissions: per view and role, a row filter
 * over the view's fields bound to the caller's claims (`tenantId = claims.tenant`), an allowed-field
 * set, and a largest page.
 *
 *   token ─▶ Caller { role, claims } ─▶ schemaFor(role)      only the views and fields the role reads
 *                                    └▶ access(view)          the filter bound to the claims: rows,
 *                                                             pages, every change of a subscription
 *
 * Callers whose bound filters are equal share a `route`: a change is judged once per route, not
 * once per subscriber.
 */
import type { GraphQLSchema } from 'graphql';
import type { Value } from '../core/values.ts';
import type { ApiOptions, ViewPermission } from '../views/config.ts';
import type { CompiledView, Registry } from '../views/registry.ts';
import type { RowFilter, ViewRow } from '../views/store/read.ts';
import { PublicError } from './errors.ts';
import type { CompiledWhere, RowPredicate } from './where.ts';

/** Who is asking: a role and the claims of its token. */
export interface Caller {
  /** null: no auth configured, every view is open. */
  readonly role: string | null;
  readonly claims: Readonly<Record<string, unknown>>;
  /** When the token expires (ms since the epoch); subscriptions end then. */
  readonly expiresAt: number | null;
}

export const OPEN_CALLER: Caller = { role: null, claims: {}, expiresAt: null };

/** The largest page anyone may ask for. */
export const MAX_PAGE_SIZE = 1000;

/** What one caller may read of one view. */
export interface ViewAccess {
  /** Fields the caller may read; null: all. */
  readonly fields: ReadonlySet<string> | null;
  readonly maxPageSize: number;
  /** Rows the caller sees: every field equals its value. Empty: all rows. */
  readonly filter: RowFilter;
  /** A subscription's `where`, ANDed with the filter (schema/where.ts). */
  readonly where?: RowPredicate;
  /** Equal for callers that see the same rows of this view (subscriptions are routed by it). */
  readonly route: string;
}

/** The access narrowed by a `where`: its route names the where too, so equal filters share one evaluation. */
export function narrowedBy(access: ViewAccess, where: CompiledWhere | null): ViewAccess {
  if (where === null) return access;
  return { ...access, where: where.test, route: `${access.route}\x1e${where.key}` };
}

export const FULL_ACCESS: ViewAccess = { fields: null, maxPageSize: MAX_PAGE_SIZE, filter: [], route: '' };

/** The shape of the schema a role gets: per view, its fields (null: all), or absent. */
export type RoleShape = (view: CompiledView) => { readonly fields: ReadonlySet<string> | null } | null;

export class Permissions {
  private readonly registry: Registry;
  private readonly api: ApiOptions | undefined;
  private readonly build: (shape: RoleShape | null) => GraphQLSchema;
  private readonly schemas = new Map<string | null, GraphQLSchema>();

  constructor(registry: Registry, api: ApiOptions | undefined, build: (shape: RoleShape | null) => GraphQLSchema) {
    this.registry = registry;
    this.api = api;
    this.build = build;
  }

  /** Whether callers are authenticated at all. */
  get enabled(): boolean {
    return this.api?.auth !== undefined;
  }

  private permission(view: CompiledView, role: string): ViewPermission | null {
    const byView = this.api?.permissions as Record<string, Record<string, ViewPermission> | undefined> | undefined;
    // With auth but no permissions section, every authenticated role reads every view.
    if (!byView) return {};
    return byView[view.name]?.[role] ?? null;
  }

  /** Whether a role reads any view (a role that reads none is refused at the door). */
  readsAnything(role: string): boolean {
    return this.registry.views.some((v) => this.permission(v, role) !== null);
  }

  /** The schema of a role: only the views it reads, only the fields it may see. Built once per role. */
  schemaFor(role: string | null): GraphQLSchema {
    let schema = this.schemas.get(role);
    if (!schema) {
      schema = this.build(
        role === null
          ? null
          : (view) => {
              const p = this.permission(view, role);
              return p ? { fields: p.fields ? new Set(p.fields) : null } : null;
            },
      );
      this.schemas.set(role, schema);
    }
    return schema;
  }

  /** What a caller may read of each view (memoized per caller: one per request or connection). */
  accessFor(caller: Caller): (view: CompiledView) => ViewAccess {
    if (caller.role === null) return () => FULL_ACCESS;
    const role = caller.role;
    const memo = new Map<string, ViewAccess>();
    return (view) => {
      let access = memo.get(view.name);
      if (!access) {
        const p = this.permission(view, role);
        if (!p) throw new PublicError(`Role ${role} may not read ${view.name}`, 'FORBIDDEN');
        access = bindPermission(view, role, p, caller.claims);
        memo.set(view.name, access);
      }
      return access;
    };
  }
}

/** A permission with its claims filled in from the caller's token. */
export function bindPermission(view: CompiledView, role: string, permission: ViewPermission, claims: Readonly<Record<string, unknown>>): ViewAccess {
  const filter: [string, Value][] = [];
  for (const [field, source] of Object.entries(permission.filter ?? {})) {
    const type = view.fields.find((f) => f.name === field)!.type;
    const isClaim = typeof source === 'object' && source !== null && 'claim' in source;
    const raw = isClaim ? claims[(source as { claim: string }).claim] : source;
    const value = asStored(type, raw);
    if (value === undefined) {
      const what = isClaim ? `claim '${(source as { claim: string }).claim}' of the token` : `the constant for ${field}`;
      throw new PublicError(
        raw === undefined
          ? `Role ${role} reads ${view.name} filtered by ${what}, which the token does not carry`
          : `Role ${role} reads ${view.name} filtered by ${what}, which is not a valid ${type}`,
        'FORBIDDEN',
      );
    }
    filter.push([field, value]);
  }
  return {
    fields: permission.fields ? new Set(permission.fields) : null,
    maxPageSize: permission.maxPageSize ?? MAX_PAGE_SIZE,
    filter,
    route: filter.length === 0 ? '' : JSON.stringify(filter),
  };
}

/** A claim (JSON) as a view row stores a value of this type; undefined when it cannot be one. */
function asStored(type: string, raw: unknown): Value | undefined {
  switch (type) {
    case 'bool':
      return raw === true || raw === 'true' ? true : raw === false || raw === 'false' ? false : undefined;
    case 'int2':
    case 'int4': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d{1,10}$/.test(raw) ? Number(raw) : NaN;
      return Number.isSafeInteger(n) ? n : undefined;
    }
    case 'int8':
      // Exact integers are stored as decimal strings.
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return String(raw);
      return typeof raw === 'string' && /^-?\d{1,19}$/.test(raw) ? BigInt(raw).toString() : undefined;
    case 'uuid':
      return typeof raw === 'string' ? raw.toLowerCase() : undefined;
    default:
      return typeof raw === 'string' ? raw : typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : undefined;
  }
}

export function rowVisible(access: ViewAccess, row: ViewRow | null): boolean {
  if (row === null) return false;
  for (const [field, value] of access.filter) if (row[field] !== value) return false;
  return access.where === undefined || access.where(row);
}

/**
 * A change as a caller with this access sees it: a row entering the caller's rows is an insert,
 * one leaving them a delete (without its new image), one outside them nothing at all.
 */
export function visibleChange<C extends { readonly op: string; readonly row: ViewRow | null; readonly previous: ViewRow | null }>(access: ViewAccess, change: C): C | null {
  if ((access.filter.length === 0 && access.where === undefined) || change.op === 'reset') return change;
  const now = rowVisible(access, change.row);
  const before = rowVisible(access, change.previous);
  if (now && before) return change;
  if (now) return { ...change, op: 'insert', previous: null };
  if (before) return { ...change, op: 'delete', row: null };
  return null;
}
