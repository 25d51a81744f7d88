/**
 * What the API process keeps of its reads, served again only while the view holds the version it
 * was read at:
 *
 *   pages     a list page per (view, filter, ordering, cursor, size): a dashboard's clients ask for
 *             the same pages. A later ask first probes the view's version in Redis (one small
 *             script, with the same checks as any read: live, its definition, not mid-transaction)
 *             and gets the kept page when nothing changed — no rows read or decoded again.
 *   counts    a filtered `totalCount` per (view, filter), with the version of the page it was asked
 *             with: it examines the whole view, and is served again only to a page of that version.
 *
 * A page or count taken while the view moved is labelled with a version the view has left: no
 * later probe or page carries it, so it is never served. The filter's identity is the access route
 * (the caller's row filter bound to its claims, and the `where`): callers who see other rows never
 * share an entry.
 */
import type { CompiledView } from '../views/registry.ts';
import type { ListPage, ListRequest } from '../views/store/list.ts';
import type { ViewRow } from '../views/store/read.ts';

type Count = { count: number | null; rowCount: number };

/** What is kept per process, pages and counts each, oldest dropped first: rows of pages (a page of 1,000 rows weighs 1,000), or counts. */
const MAX_WEIGHT = 200_000;

export interface ReadCacheSource {
  readonly list: (view: CompiledView, request: ListRequest) => Promise<ListPage>;
  readonly version: (view: CompiledView) => Promise<string>;
  readonly count: (view: CompiledView, keep: ((row: ViewRow) => boolean) | null) => Promise<Count>;
}

class Kept<T> {
  private readonly entries = new Map<string, { readonly version: string; readonly value: T; readonly weight: number }>();
  private weight = 0;
  private readonly weigh: (value: T) => number;

  constructor(weigh: (value: T) => number) {
    this.weigh = weigh;
  }

  get(key: string): { readonly version: string; readonly value: T } | undefined {
    return this.entries.get(key);
  }

  set(key: string, version: string, value: T): void {
    this.drop(key);
    const weight = this.weigh(value);
    while (this.weight + weight > MAX_WEIGHT && this.entries.size > 0) this.drop(this.entries.keys().next().value!);
    this.entries.set(key, { version, value, weight });
    this.weight += weight;
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.weight -= entry.weight;
  }
}

export class ReadCache {
  private readonly source: ReadCacheSource;
  private readonly pages = new Kept<ListPage>((page) => page.rows.length + 1);
  private readonly counts = new Kept<Count>(() => 1);

  constructor(source: ReadCacheSource) {
    this.source = source;
  }

  async list(view: CompiledView, request: ListRequest): Promise<ListPage> {
    if (request.keep !== null && request.keepKey === undefined) return this.source.list(view, request);
    const key = [view.name, request.keepKey ?? '', request.ordering?.signature ?? '', request.indexed ? '1' : '0', request.after ?? '', request.limit, request.budget ?? '', request.sortInMemoryRows].join('\u001e');
    const known = this.pages.get(key);
    if (known && (await this.source.version(view)) === known.version) return known.value;
    const page = await this.source.list(view, request);
    this.pages.set(key, page.version, page);
    return page;
  }

  async count(view: CompiledView, keep: ((row: ViewRow) => boolean) | null, as?: { readonly filter: string; readonly version: string }): Promise<Count> {
    if (keep === null || as === undefined) return this.source.count(view, keep);
    const key = `${view.name}\u001e${as.filter}`;
    const known = this.counts.get(key);
    if (known && known.version === as.version) return known.value;
    const result = await this.source.count(view, keep);
    this.counts.set(key, as.version, result);
    return result;
  }
}
