/**
 * View definitions as data in Redis (meta `def:<view>`, written with `fp:<view>`), so that a writer
 * whose config changed a view can still maintain the definition being served while it builds the
 * new one beside it (engine.ts: the swap). A definition is plain data already (define.ts); stored,
 * a table is its declaration and another view a reference by name:
 *
 *   { "kind": "view", "from": { "alias": "o", "table": { "$table": "public.orders", "specs": {…}, "key": ["id"] }, "view": null }, …,
 *     "joins": [{ "source": { "alias": "v", "table": null, "view": { "$view": "revenueByCustomer" } }, … }] }
 */
import { table, type TableDef, type ViewDef } from './define.ts';
import { createRegistry, type CompiledView, type Registry } from './registry.ts';
import type { PlanNode } from './plan/graph.ts';
import { ConfigError } from './errors.ts';

/** Each view's definition as JSON, views it reads named. */
export function encodeDefinitions(views: readonly CompiledView[]): Map<string, string> {
  const names = new Map<ViewDef, string>(views.map((v) => [v.definition, v.name]));
  return new Map(
    views.map((v) => [
      v.name,
      JSON.stringify(v.definition, (key, value: unknown) => {
        if (key === '') return value;
        const o = value as { kind?: unknown } | null;
        if (o?.kind === 'table') {
          const t = o as TableDef;
          return { $table: t.name, specs: t.specs, key: t.key };
        }
        if (o?.kind === 'view') return { $view: names.get(o as ViewDef) ?? null };
        return value;
      }),
    ]),
  );
}

/** Definitions back from JSON (one object per table and per view, as a config holds them). */
export function decodeDefinitions(stored: ReadonlyMap<string, string>): Record<string, ViewDef> {
  const tables = new Map<string, TableDef>();
  const views: Record<string, ViewDef> = {};
  const refs: { holder: Record<string, unknown>; field: string; name: string }[] = [];
  for (const [name, json] of stored) {
    views[name] = JSON.parse(json, function (this: Record<string, unknown>, field, value: unknown) {
      const o = value as {
        $table?: string;
        specs?: Record<string, string>;
        key?: string[];
        $view?: string;
      } | null;
      if (typeof o?.$table === 'string') {
        const known =
          tables.get(o.$table) ??
          table(o.$table, o.specs as Record<string, never>, { key: o.key as never[] });
        tables.set(o.$table, known);
        return known;
      }
      if (o !== null && typeof o === 'object' && '$view' in o) {
        refs.push({ holder: this, field, name: String(o.$view) });
        return null;
      }
      return value;
    }) as ViewDef;
  }
  for (const { holder, field, name } of refs) {
    if (!views[name]) throw new Error(`stored definition reads view ${name}, which is not stored`);
    holder[field] = views[name];
  }
  return views;
}

/**
 * The served definitions of views being swapped, compiled from what Redis stores, to keep them up
 * to date until their new definitions take over. Each is named by its storage in the dataflow and
 * writes its view's changelog; a view it reads that is unchanged is read live, one being swapped too
 * is read in its retired definition. A candidate that cannot be kept (it reads a view rebuilt
 * without a swap, or columns this config no longer streams) is left out, with why.
 */
export function retiredViews(
  current: Registry,
  stored: {
    readonly definitions: ReadonlyMap<string, string>;
    readonly fingerprints: ReadonlyMap<string, string>;
  },
  candidates: ReadonlySet<string>,
  rebuilding: ReadonlySet<string>,
): { views: CompiledView[]; problems: Map<string, string> } {
  const problems = new Map<string, string>();
  let old: Registry;
  try {
    old = createRegistry({
      name: current.name,
      source: { kind: 'postgres' },
      views: decodeDefinitions(stored.definitions),
    });
  } catch (error) {
    const why = `its stored definition no longer compiles (${error instanceof ConfigError ? error.message : String(error)})`;
    for (const view of candidates) problems.set(view, why);
    return { views: [], problems };
  }
  const swapping = new Set(candidates);
  const problemOf = (view: CompiledView): string | null => {
    if (view.fingerprint !== stored.fingerprints.get(view.name))
      return 'its stored definition is not the one served';
    for (const producer of view.dependsOn) {
      if (swapping.has(producer)) continue;
      if (rebuilding.has(producer))
        return `it reads ${producer}, which is rebuilt without the old one serving`;
      if (current.byName.get(producer)?.fingerprint !== old.byName.get(producer)?.fingerprint)
        return `it reads ${producer}, whose definition changed`;
    }
    // Its tables must still be streamed with the columns it reads.
    for (const read of view.reads) {
      const columns = new Set(current.views.flatMap((v) => v.columnsOf(read.table.name)));
      const missing = read.columns.filter((c) => !columns.has(c));
      if (missing.length > 0)
        return `it reads ${read.table.name}.${missing.join(', ')}, which no view of this config reads`;
    }
    return null;
  };
  // Leaving one out may leave out those reading it: until nothing changes.
  for (let changed = true; changed;) {
    changed = false;
    for (const name of swapping) {
      const view = old.byName.get(name);
      const problem = view ? problemOf(view) : 'no definition of it is stored';
      if (problem === null) continue;
      problems.set(name, problem);
      swapping.delete(name);
      changed = true;
    }
  }
  const renamed = new Map([...swapping].map((name) => [name, old.byName.get(name)!.storage]));
  const views = old.views
    .filter((v) => swapping.has(v.name))
    .map((v) => ({ ...v, name: v.storage, serves: v.name, plan: readingRetired(v.plan, renamed) }));
  return { views, problems };
}

/** The plan with its reads of swapped views pointed at their retired definitions. */
function readingRetired(node: PlanNode, renamed: ReadonlyMap<string, string>): PlanNode {
  switch (node.kind) {
    case 'scan':
      return node;
    case 'view':
      return renamed.has(node.view) ? { ...node, view: renamed.get(node.view)! } : node;
    case 'join':
      return {
        ...node,
        left: readingRetired(node.left, renamed),
        right: readingRetired(node.right, renamed),
      };
    default:
      return { ...node, input: readingRetired(node.input, renamed) };
  }
}
