/**
 * Shape changes of source tables on the Debezium path, from the row schema Debezium sends with every
 * event (JsonConverter with schemas.enable=true; the decoder compiles it once per distinct schema,
 * RowSchema). Pure: the Kafka source feeds it each decoded change's table, row schema and order
 * token, and attaches what it returns to the batch that carries that change.
 *
 * Per declared table it keeps the schema seen last (its `id` is compared on every record: one map
 * lookup and one string compare when nothing changed):
 *
 *   first schema seen        compared with the declaration (TableRequirement.columns): a declared
 *                            column that is missing, or whose Debezium type does not decode as its
 *                            declared type — so that a restart after an ALTER is caught. When the
 *                            source knows the schema of the last record it applied before the restart
 *                            (`baseline`), the first schema is also compared with that one.
 *   a later, other schema    compared with the previous one: declared columns dropped, columns
 *                            added, declared columns whose Debezium type changed (fitsDeclaration:
 *                            the new type still decodes as the declared ColumnType, DECODES_AS in
 *                            debezium/schema.ts)
 *
 * A record older than the one that brought the current schema (a smaller order token: Debezium
 * re-sending what it had sent before an ALTER, after a Kafka Connect restart) says nothing about the
 * table's shape now: it is not compared. Records without a schema (schemas.enable=false) never reach
 * this: with no schema there is nothing to compare, and a change of shape shows only in the values
 * (a column a view reads that is missing from a change stops that view when it is planned).
 *
 * Not detectable here: a renamed table (Debezium writes it to a new topic, named after the new name,
 * which the service does not follow), and REPLICA IDENTITY (not in Debezium's schema).
 */
import type { Change, SchemaChange } from '../change.ts';
import type { TableRequirement } from '../source-options.ts';
import type { RowSchema } from './debezium/index.ts';

const NONE: readonly SchemaChange[] = Object.freeze([]);

interface TableState {
  readonly declared: TableRequirement;
  /** The schema compared with next; null until the first record of the table. */
  schema: RowSchema | null;
  /** The order token of the record that brought `schema`. */
  since: string | undefined;
  /** The schema has been compared with the declaration. */
  checked: boolean;
}

export class SchemaTracker {
  private readonly tables = new Map<string, TableState>();
  private readonly orderOf: (change: Change) => string | undefined;

  /** `orderOf`: a change's place in its row's history (Change.order), to recognise records sent again. */
  constructor(tables: readonly TableRequirement[], orderOf: (change: Change) => string | undefined) {
    for (const declared of tables)
      this.tables.set(declared.name, { declared, schema: null, since: undefined, checked: false });
    this.orderOf = orderOf;
  }

  /**
   * The schema of the last record applied before this start (read again, not applied): what the
   * first record after it is compared with — and, then, the declaration too.
   */
  baseline(change: Change, schema: RowSchema): void {
    const state = this.tables.get(change.table);
    if (state === undefined || state.schema !== null) return;
    state.schema = schema;
    state.since = this.orderOf(change);
  }

  /** The shape changes that `change`, decoded with `schema`, reveals about its table (mostly none). */
  observe(change: Change, schema: RowSchema): readonly SchemaChange[] {
    const state = this.tables.get(change.table);
    if (state === undefined) return NONE;
    const previous = state.schema;
    if (state.checked && previous !== null && previous.id === schema.id) return NONE;
    const order = this.orderOf(change);
    if (previous !== null && isOlder(order, state.since)) return NONE;
    const changes = compareRowSchemas(previous, schema, state.declared, !state.checked);
    state.schema = schema;
    state.since = order;
    state.checked = true;
    return changes;
  }
}

/** A streamed change's position before the one that brought the current schema (Change.order tokens). */
function isOlder(order: string | undefined, since: string | undefined): boolean {
  // A token of one letter carries no position (an incremental snapshot read): it cannot be placed.
  return order !== undefined && since !== undefined && order.length > 1 && since.length > 1 && order < since;
}

/**
 * What differs between `previous` (null: nothing known but the declaration) and `next` for the
 * declared table; with `againstDeclaration`, every declared column is also checked against `next`
 * (missing, or of a type that does not decode as the declared one) — the first schema seen.
 */
export function compareRowSchemas(
  previous: RowSchema | null,
  next: RowSchema,
  declared: TableRequirement,
  againstDeclaration: boolean,
): SchemaChange[] {
  const table = declared.name;
  const changes: SchemaChange[] = [];
  const dropped: string[] = [];
  const typeChanges: SchemaChange[] = [];
  for (const [column, { type: declaredType }] of Object.entries(declared.columns)) {
    const now = next.columns.get(column);
    const was = previous?.columns.get(column);
    if (now === undefined) {
      if (againstDeclaration || was !== undefined) dropped.push(column);
      continue;
    }
    const fits = now.decodesAs.includes(declaredType);
    if (was !== undefined && was.type !== now.type) {
      typeChanges.push({
        kind: 'typeChanged',
        table,
        column,
        from: was.type,
        to: now.type,
        fitsDeclaration: fits,
      });
    } else if (!fits && (againstDeclaration || was === undefined)) {
      // Not seen with another Debezium type: it differs from the declaration itself.
      typeChanges.push({
        kind: 'typeChanged',
        table,
        column,
        from: `${declaredType} (declared)`,
        to: now.type,
        fitsDeclaration: false,
      });
    }
  }
  if (dropped.length > 0) changes.push({ kind: 'columnsDropped', table, columns: dropped });
  if (previous !== null && previous.id !== next.id) {
    const added = [...next.columns.keys()].filter((column) => !previous.columns.has(column));
    if (added.length > 0) changes.push({ kind: 'columnsAdded', table, columns: added });
  }
  changes.push(...typeChanges);
  return changes;
}
