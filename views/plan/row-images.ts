/**
 * Row images: what makes an at-least-once source (Debezium over Kafka) exact.
 *
 * Such a source may deliver a change twice (connector restart, redelivery), re-read rows (a
 * repeated snapshot), send no old row (`before: null` under REPLICA IDENTITY DEFAULT) or an old row
 * whose non-key columns are placeholders. So the engine keeps, per source row, the columns the
 * views read and the `order` of the last change applied to it:
 *
 *   cdcv:{<deployment>}:img:<table>   HASH   encoded key → "<order>\n<row JSON>"  ("<order>\n" once deleted)
 *                                            ~truncated → order of the table's last TRUNCATE
 *
 * and rewrites each incoming change against it (pure, below):
 *
 *   change not newer than image  → skipped: already applied (or older than what is); isNewer()
 *   change (or TRUNCATE) not newer than the table's last TRUNCATE → skipped: a TRUNCATE drops the
 *                                  images, so only this floor tells a re-sent older change apart
 *   before                       ← the image (never the event's own `before`)
 *   unchanged TOAST values       ← the image
 *   op                           ← c / u / d from whether an image and an `after` exist
 *
 * The state is one entry per source row, holding only the columns views read (the role of a join
 * index). The atomic step checks that every image is still what was read (compare-and-set), so a
 * rebalanced partition applied by another worker is noticed and the batch re-planned.
 */
import { UNAVAILABLE, type Change, type ChangeRow, type Row } from '../../ingest/change.ts';
import type { Value } from '../../core/values.ts';
import { encodeRowKey } from '../../core/encoding.ts';
import type { Registry } from '../registry.ts';

export interface RowImage {
  readonly order: string;
  /** null: the row was deleted (the order is kept, so an older re-sent insert stays dead). */
  readonly row: Row | null;
}

/** The images of one table: encoded key → stored text (absent: never seen). */
export type StoredImages = ReadonlyMap<string, ReadonlyMap<string, string | null>>;

export interface ImageWrites {
  /** Tables truncated in this batch: their images are dropped first. */
  readonly clear: Set<string>;
  /** table → key → { expected stored text (null: do not check), new stored text }. */
  readonly set: Map<string, Map<string, { expected: string | null; value: string }>>;
}

export interface ResolvedChanges {
  readonly changes: Change[];
  readonly writes: ImageWrites;
  /** Changes dropped because their row already had this change or a newer one. */
  readonly skipped: number;
}

/**
 * Whether a change's order token is newer than the image's. Tokens are a kind letter and a
 * fixed-width source position ('t' streamed change, 's' snapshot read). Positions compare as
 * strings, with one exception: a streamed change always beats a snapshot read. A row's streamed
 * changes follow each other in commit order, but a transaction that was open during the snapshot
 * commits after it with a position from before it, and it must still apply.
 */
export function isNewer(order: string, than: string): boolean {
  if (order[0] === 't' && than[0] === 's') return true;
  return order.slice(1) > than.slice(1);
}

export function encodeImage(image: RowImage): string {
  return `${image.order}\n${image.row ? JSON.stringify(image.row) : ''}`;
}

export function decodeImage(stored: string): RowImage {
  const newline = stored.indexOf('\n');
  const json = stored.slice(newline + 1);
  return { order: stored.slice(0, newline), row: json ? (JSON.parse(json) as Row) : null };
}

/**
 * The images hash field holding the order of the table's last TRUNCATE (encoded keys start with a
 * tag byte below 0x20, so no row key equals it).
 */
export const TRUNCATED_FIELD = '~truncated';

/**
 * Whether a change is older than (or is) the table's last TRUNCATE; unknown positions never are. A
 * snapshot read is older only when its position is: one tagged with the TRUNCATE's own position
 * (Debezium may tag an incremental snapshot with the last position it streamed) was read after it.
 */
function belowFloor(order: string | undefined, floor: string | null): boolean {
  if (order === undefined || floor === null || order.length <= 1 || floor.length <= 1) return false;
  if (order[0] === 's') return order.slice(1) < floor.slice(1);
  return !isNewer(order, floor);
}

/** The key of a change's row, encoded like view keys, from the table's declared key columns. */
export function imageKey(registry: Registry, change: Change): string | null {
  const table = registry.tables.find((t) => t.name === change.table);
  if (!table || !change.key) return null;
  return encodeRowKey(
    table.key.map((k) => table.columns[k]!.type),
    table.key.map((k) => (change.key![k] ?? null) as Value),
  );
}

/** The keys whose images a batch needs, per table. */
export function imageKeysOf(registry: Registry, changes: readonly Change[]): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const change of changes) {
    if (!registry.byTable.has(change.table)) continue;
    let set = keys.get(change.table);
    if (!set) keys.set(change.table, (set = new Set([TRUNCATED_FIELD])));
    const key = imageKey(registry, change);
    if (key !== null) set.add(key);
  }
  return keys;
}

/** Columns an image keeps: the table's key and every column a view of it reads. */
function imageColumns(registry: Registry, table: string): string[] {
  const columns = new Set(registry.tables.find((t) => t.name === table)?.key ?? []);
  for (const view of registry.byTable.get(table) ?? []) for (const c of view.columnsOf(table)) columns.add(c);
  return [...columns];
}

/** Rewrite an at-least-once batch into exact changes against the stored images (see above). */
export function resolveWithImages(registry: Registry, changes: readonly Change[], stored: StoredImages): ResolvedChanges {
  const writes: ImageWrites = { clear: new Set(), set: new Map() };
  const current = new Map<string, Map<string, RowImage | null>>();
  const columnsOf = new Map<string, string[]>();
  const resolved: Change[] = [];
  // Per table: the order of its last TRUNCATE, this batch's or the stored one.
  const floors = new Map<string, string | null>();
  let skipped = 0;

  for (const change of changes) {
    if (!registry.byTable.has(change.table)) continue;
    const table = change.table;
    let images = current.get(table);
    if (!images) current.set(table, (images = new Map()));
    let tableWrites = writes.set.get(table);
    if (!tableWrites) writes.set.set(table, (tableWrites = new Map()));

    if (!floors.has(table)) floors.set(table, stored.get(table)?.get(TRUNCATED_FIELD) ?? null);
    if (belowFloor(change.order, floors.get(table)!)) {
      skipped++;
      continue;
    }
    if (change.op === 't') {
      writes.clear.add(table);
      tableWrites.clear();
      images.clear();
      for (const key of stored.get(table)?.keys() ?? []) if (key !== TRUNCATED_FIELD) images.set(key, null);
      if (change.order !== undefined) {
        floors.set(table, change.order);
        tableWrites.set(TRUNCATED_FIELD, { expected: null, value: change.order });
      }
      resolved.push(change);
      continue;
    }
    const key = imageKey(registry, change);
    if (key === null) continue;
    const storedText = stored.get(table)?.get(key) ?? null;
    const image = images.has(key) ? images.get(key)! : storedText === null ? null : decodeImage(storedText);

    if (change.order !== undefined && image && !isNewer(change.order, image.order)) {
      skipped++;
      continue;
    }
    const before = image?.row ?? null;
    let after: ChangeRow | null = change.op === 'd' ? null : change.after;
    if (after && before) {
      let filled: Record<string, unknown> | null = null;
      for (const [column, value] of Object.entries(after)) {
        if (value !== UNAVAILABLE || !(column in before)) continue;
        filled ??= { ...after };
        filled[column] = before[column];
      }
      if (filled) after = filled as ChangeRow;
    }
    const order = change.order ?? image?.order ?? '';
    let columns = columnsOf.get(table);
    if (!columns) columnsOf.set(table, (columns = imageColumns(registry, table)));
    const next: RowImage = { order, row: after ? project(after, columns) : null };
    images.set(key, next);
    const expected = writes.clear.has(table) ? null : storedText ?? '';
    tableWrites.set(key, { expected: tableWrites.get(key)?.expected ?? expected, value: encodeImage(next) });

    if (!before && !after) continue; // deleting a row never seen (or already deleted)
    resolved.push({ ...change, op: before ? (after ? 'u' : 'd') : 'c', before, after });
  }
  return { changes: resolved, writes, skipped };
}

function project(row: ChangeRow, columns: readonly string[]): Row {
  const out: Record<string, Value> = {};
  for (const c of columns) {
    const v = row[c];
    // An unchanged TOAST value the image did not know stays unknown: left out, so a view reading
    // it rejects the change instead of guessing.
    if (v !== undefined && v !== UNAVAILABLE) out[c] = v;
  }
  return out;
}

/** The same writes on images kept under a namespace (a backfill's own: `img:<namespace><table>`). */
export function inNamespace(writes: ImageWrites, namespace: string): ImageWrites {
  return { clear: new Set([...writes.clear].map((t) => namespace + t)), set: new Map([...writes.set].map(([t, entries]) => [namespace + t, entries])) };
}

/** Two sets of image writes on different tables (or namespaces) in one step. */
export function mergeImageWrites(a: ImageWrites | null, b: ImageWrites): ImageWrites {
  if (!a) return b;
  return { clear: new Set([...a.clear, ...b.clear]), set: new Map([...a.set, ...b.set]) };
}
