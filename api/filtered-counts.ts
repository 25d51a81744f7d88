/**
 * Counts of filtered lists (`totalCount` with a `where` or a row filter) examine the whole view in
 * Redis; a dashboard asks the same count again and again. A count is kept with the version of the
 * page it was asked with and the filter's identity (the access route: the caller's row filter and
 * `where`), and served again only to a page read at that same version — the view has not changed
 * since. A count taken while the view moved is labelled with the older version, which no later page
 * carries: it is never served.
 */
import type { CompiledView } from '../views/registry.ts';
import type { ViewRow } from '../views/store/read.ts';

type Count = { count: number | null; rowCount: number };
type Counter = (view: CompiledView, keep: ((row: ViewRow) => boolean) | null) => Promise<Count>;

/** Filters remembered per process (each a view and a filter: a dashboard has a few). */
const MAX_ENTRIES = 1_000;

export class FilteredCounts {
  private readonly counter: Counter;
  private readonly kept = new Map<string, { readonly version: string; readonly result: Count }>();

  constructor(counter: Counter) {
    this.counter = counter;
  }

  async count(view: CompiledView, keep: ((row: ViewRow) => boolean) | null, as?: { readonly filter: string; readonly version: string }): Promise<Count> {
    if (keep === null || as === undefined) return this.counter(view, keep);
    const key = `${view.name}\u001e${as.filter}`;
    const known = this.kept.get(key);
    if (known && known.version === as.version) return known.result;
    const result = await this.counter(view, keep);
    this.kept.delete(key);
    if (this.kept.size >= MAX_ENTRIES) this.kept.delete(this.kept.keys().next().value!);
    this.kept.set(key, { version: as.version, result });
    return result;
  }
}
