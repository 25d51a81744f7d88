/**
 * `cdc-views check` against the live PostgreSQL source: what the service would refuse at start
 * (ingest/pg/catalog.ts: tables, columns and types, nullability, primary keys, replica identity,
 * wal_level), and what would fail or hurt later — the role's right to replicate, the publication
 * missing a table, the slot taken by another plugin or holding much WAL. Each problem with the
 * statement that fixes it; notes for what start will create.
 */
import type pg from 'pg';
import { checkSourceTables, splitTableName } from '../ingest/pg/catalog.ts';
import { SourceSchemaError } from '../ingest/errors.ts';
import type { TableRequirement } from '../ingest/source-options.ts';

export interface LiveCheck {
  readonly problems: string[];
  readonly notes: string[];
}

/** Retained WAL past which the slot is called out (an idle or dead consumer holds it on the primary's disk). */
const WAL_WARNING_BYTES = 1024 ** 3;

export async function checkLiveSource(db: pg.Client, tables: readonly TableRequirement[], slot: string, publication: string): Promise<LiveCheck> {
  const problems: string[] = [];
  const notes: string[] = [];
  try {
    await checkSourceTables(db, tables);
  } catch (error) {
    if (!(error instanceof SourceSchemaError)) throw error;
    problems.push(...error.problems);
  }

  const role = (await db.query<{ rolname: string; rolreplication: boolean; rolsuper: boolean }>('SELECT rolname, rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0];
  if (role && !role.rolreplication && !role.rolsuper) {
    problems.push(`role ${role.rolname} may not replicate. Fix: ALTER ROLE ${role.rolname} WITH REPLICATION;`);
  }
  for (const t of tables) {
    const [schema, name] = splitTableName(t.name);
    const exists = (await db.query<{ ok: boolean | null }>(`SELECT has_table_privilege(to_regclass($1), 'SELECT') AS ok`, [`${schema}.${name}`])).rows[0]?.ok;
    if (exists === false) problems.push(`role ${role?.rolname ?? 'current_user'} may not read ${t.name} (the snapshot reads it). Fix: GRANT SELECT ON ${t.name} TO ${role?.rolname ?? 'current_user'};`);
  }

  const published = await db.query<{ schemaname: string; tablename: string }>('SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1', [publication]);
  const pub = (await db.query<{ puballtables: boolean }>('SELECT puballtables FROM pg_publication WHERE pubname = $1', [publication])).rows[0];
  if (!pub) {
    notes.push(`publication ${publication} does not exist yet: start creates it for the declared tables`);
  } else if (!pub.puballtables) {
    const have = new Set(published.rows.map((r) => `${r.schemaname}.${r.tablename}`));
    const missing = tables.filter((t) => !have.has(t.name)).map((t) => t.name);
    if (missing.length > 0) problems.push(`publication ${publication} does not include ${missing.join(', ')}, so their changes never arrive. Fix: ALTER PUBLICATION ${publication} ADD TABLE ${missing.join(', ')};`);
  }

  const slots = await db.query<{ plugin: string | null; slot_type: string; active: boolean; retained: string | null; wal_status: string | null }>(
    `SELECT plugin, slot_type, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained, wal_status FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const s = slots.rows[0];
  if (!s) {
    notes.push(`replication slot ${slot} does not exist yet: start creates it (and takes the initial snapshot)`);
  } else {
    if (s.slot_type !== 'logical' || s.plugin !== 'pgoutput') {
      problems.push(`replication slot ${slot} is a ${s.slot_type} slot${s.plugin ? ` of plugin ${s.plugin}` : ''}, not a pgoutput one. Fix: choose another source.postgres.slot, or SELECT pg_drop_replication_slot('${slot}'); if nothing else uses it`);
    }
    if (s.wal_status === 'lost') {
      problems.push(`replication slot ${slot} lost WAL it needed (max_slot_wal_keep_size): the views cannot catch up from it. Fix: SELECT pg_drop_replication_slot('${slot}'); then start (the views are rebuilt from a snapshot)`);
    }
    const retained = Number(s.retained ?? 0);
    notes.push(`replication slot ${slot}: ${s.active ? 'in use' : 'idle'}, holding ${(retained / 1024 ** 2).toFixed(1)} MiB of WAL`);
    if (retained > WAL_WARNING_BYTES && !s.active) {
      notes.push(`⚠ the idle slot ${slot} holds ${(retained / 1024 ** 3).toFixed(1)} GiB of WAL on the primary's disk: start the service, or drop the slot if this deployment is gone`);
    }
  }
  return { problems, notes };
}
