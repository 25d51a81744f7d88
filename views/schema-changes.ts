/**
 * What a change of a source table's shape means for each view (pure). The behaviour per case:
 *
 *   change                                   views that read what changed       other views
 *   column added                             carry on                           carry on
 *   column dropped                           stopped: the fix is in the config  carry on (note: declared, unread)
 *   type changed, still the declared type    rebuilt: the table was rewritten   carry on
 *     (numeric(12,2) → numeric(12,3), varchar → text)  outside the change stream
 *   type changed, no longer the declared     stopped: declare the new type
 *   table renamed                            stopped: declare the new name
 *   REPLICA IDENTITY weakened                stopped when the view needs whole old rows (aggregates)
 *
 * When a rebuild re-reads a log rather than the tables (Kafka: ChangeSource.rebuildsFrom), it meets
 * the records from before the change again, with the old shape and values. So there, a type change
 * that still fits stops the views reading the column (a rebuild would bring the old values back),
 * and the fix of a type that no longer fits includes having the table sent again into new topics;
 * restoring a dropped column is no fix either.
 *
 * A stopped view is not served (queries and subscriptions say why) and keeps no changes; the
 * next start, once the config and the database agree again, rebuilds it.
 */
import type { SchemaChange } from '../ingest/change.ts';
import type { Registry } from './registry.ts';

export interface SchemaEffectOptions {
  /**
   * What a rebuild would read (ChangeSource.rebuildsFrom): the tables as they are now, or the same
   * log again — which cannot repair values the source database rewrote outside the stream.
   */
  readonly rebuildsFrom?: 'snapshot' | 'log';
}

export interface SchemaEffects {
  readonly stop: { readonly view: string; readonly reason: string }[];
  /** Why the views must be rebuilt, when they must. */
  rebuild: string | null;
  /** Things an operator should know that change nothing now. */
  readonly notes: string[];
}

export function schemaChangeEffects(registry: Registry, changes: readonly SchemaChange[], options: SchemaEffectOptions = {}): SchemaEffects {
  const effects: SchemaEffects = { stop: [], rebuild: null, notes: [] };
  const stop = (view: string, reason: string): void => {
    if (!effects.stop.some((s) => s.view === view)) effects.stop.push({ view, reason });
  };
  // A rebuild that re-reads a log (Kafka) meets every record again, those from before the change
  // with the table's old shape: a fix must make the log agree with the config, not only the config.
  const log = options.rebuildsFrom === 'log';
  const resend = 'have Debezium send the table again into new topics (a new topic.prefix with snapshot.mode=initial) and point source.kafka at them';
  for (const change of changes) {
    const views = registry.byTable.get(change.table) ?? [];
    const readers = (columns: readonly string[]) => views.filter((v) => columns.some((c) => v.columnsOf(change.table).includes(c)));
    switch (change.kind) {
      case 'renamed':
        for (const v of views) {
          stop(
            v.name,
            `table ${change.table} was renamed to ${change.newName} in the source database, so its changes no longer reach the view. Fix: declare table('${change.newName}', …) in the config (or rename the table back), then restart`,
          );
        }
        break;
      case 'columnsDropped': {
        for (const v of readers(change.columns)) {
          const read = change.columns.filter((c) => v.columnsOf(change.table).includes(c));
          stop(
            v.name,
            `column ${read.map((c) => `${change.table}.${c}`).join(', ')} was dropped in the source database, and the view reads it. Fix: remove it from the view and the table declaration${log ? '' : ' (or restore the column)'}, then restart`,
          );
        }
        const unread = change.columns.filter((c) => readers([c]).length === 0);
        if (unread.length > 0) {
          effects.notes.push(
            `column ${unread.map((c) => `${change.table}.${c}`).join(', ')} was dropped in the source database; no view reads it, so the views carry on. Remove it from the table declaration before the next start`,
          );
        }
        break;
      }
      case 'columnsAdded':
        effects.notes.push(`column ${change.columns.map((c) => `${change.table}.${c}`).join(', ')} was added in the source database; no view reads it yet`);
        break;
      case 'typeChanged': {
        const affected = readers([change.column]);
        if (affected.length === 0) {
          effects.notes.push(`column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}; no view reads it`);
        } else if (change.fitsDeclaration && log) {
          // Re-reading the log gives the same values again: the rows not changed since keep the old
          // ones (a numeric's old scale), so only the source can send the table again.
          for (const v of affected) {
            stop(
              v.name,
              `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}: the source database rewrote its values outside the change stream, and the records in Kafka still hold the old ones, so neither carrying on nor re-reading the topics gives the table's values. Fix: ${resend}, then restart (the views are rebuilt)`,
            );
          }
        } else if (change.fitsDeclaration) {
          effects.rebuild ??= `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}: the table was rewritten outside the change stream, so the views are rebuilt from a fresh snapshot`;
        } else {
          for (const v of affected) {
            stop(
              v.name,
              log
                ? `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}, which no longer fits its declaration. Fix: declare the column with its new type in the config and, as the records in Kafka from before the change keep the old type, ${resend}; then restart (the views are rebuilt)`
                : `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}, which no longer fits its declaration. Fix: declare the column with its new type in the config, then restart (the views are rebuilt)`,
            );
          }
        }
        break;
      }
      case 'replicaIdentity': {
        if (change.to === 'full') break;
        const affected = change.to === 'nothing' ? views : views.filter((v) => v.reads.some((r) => r.table.name === change.table && r.needsOldRow));
        for (const v of affected) {
          stop(
            v.name,
            `REPLICA IDENTITY of ${change.table} changed from ${change.from.toUpperCase()} to ${change.to.toUpperCase()}, so updates and deletes no longer carry the whole old row the view needs. Fix: ALTER TABLE ${change.table} REPLICA IDENTITY FULL; then restart (the view is rebuilt)`,
          );
        }
        break;
      }
    }
  }
  return effects;
}
