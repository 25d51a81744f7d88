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
 * A stopped view is not served (queries and subscriptions say why) and keeps no changes; the
 * next start, once the config and the database agree again, rebuilds it.
 */
import type { SchemaChange } from '../ingest/change.ts';
import type { Registry } from './registry.ts';

export interface SchemaEffects {
  readonly stop: { readonly view: string; readonly reason: string }[];
  /** Why the views must be rebuilt, when they must. */
  rebuild: string | null;
  /** Things an operator should know that change nothing now. */
  readonly notes: string[];
}

export function schemaChangeEffects(registry: Registry, changes: readonly SchemaChange[]): SchemaEffects {
  const effects: SchemaEffects = { stop: [], rebuild: null, notes: [] };
  const stop = (view: string, reason: string): void => {
    if (!effects.stop.some((s) => s.view === view)) effects.stop.push({ view, reason });
  };
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
            `column ${read.map((c) => `${change.table}.${c}`).join(', ')} was dropped in the source database, and the view reads it. Fix: remove it from the view and the table declaration (or restore the column), then restart`,
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
        } else if (change.fitsDeclaration) {
          effects.rebuild ??= `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}: the table was rewritten outside the change stream, so the views are rebuilt from a fresh snapshot`;
        } else {
          for (const v of affected) {
            stop(
              v.name,
              `column ${change.table}.${change.column} changed type from ${change.from} to ${change.to}, which no longer fits its declaration. Fix: declare the column with its new type in the config, then restart (the views are rebuilt)`,
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
