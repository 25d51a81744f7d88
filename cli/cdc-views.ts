/**
 * cdc-views command line. `cdc-views --help` lists the commands.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger, startService } from '../api/service.ts';
import { ServiceError } from '../core/errors.ts';
import pg from 'pg';
import {
  deadLetterKey,
  keyPrefix,
  leaseKey,
  requestsKey,
  rowsKey,
  viewStatePattern,
} from '../views/store/keys.ts';
import { verifyViews } from './verify.ts';
import { checkLiveSource } from './check-live.ts';
import { describeCondition } from '../views/reactions.ts';
import { replayDeadLetters } from '../reactions/runner.ts';
import { reactionBacklogs } from '../reactions/groups.ts';
import { readStoredState, statusOf } from '../views/store/state.ts';
import { describeBackfill, terminalProgress } from './progress.ts';
import { connectRedis, scanKeys } from '../views/store/redis.ts';
import type { Config } from '../views/config.ts';
import { ConfigError } from '../views/errors.ts';
import { currentVersion } from '../views/store/read.ts';
import { createRegistry, tableRequirements } from '../views/registry.ts';
import { printViewSchema } from '../schema/build-schema.ts';
import { CliError } from './errors.ts';
import { INIT_HELP, runInit } from './init.ts';
import { INTROSPECT_HELP, runIntrospect } from './introspect.ts';

const HELP = `cdc-views — incrementally maintained views in Redis, served over GraphQL

Usage:
  cdc-views start  --config <file> [--port <n>] [--host <addr>]   run the service
                   [--api-only | --ingest-only | --reactions-only]  one ingest process, any number of the others
  cdc-views check  --config <file> [--database <url>] [--offline]  validate the config, then the live database
                                                                   (tables, types, keys, replica identity, wal_level,
                                                                   role, publication, slot): every problem with its fix
  cdc-views sql    --config <file> [<view>]                        print each view as the SQL it maintains
  cdc-views schema --config <file>                                 print the GraphQL schema (SDL)
  cdc-views status --config <file>                                 writer, checkpoint; state, rows and version per view; reactions
  cdc-views rebuild <view>… --config <file> [--wait]               build views again while the others stay live
                                                                   (--wait: until they are live, showing progress)
  cdc-views slot drop --config <file> [--force]                    drop the replication slot (frees the WAL it holds;
                                                                   the next start rebuilds every view)
  cdc-views verify [<view>…] --config <file> [--database <url>]    compare live views with their SQL on the database
                                                                   (exit 1 when a key still differs once caught up)
  cdc-views reactions replay <name> --from-dead-letters --config <file>
                                                                   run a reaction again on its dead letters
  cdc-views introspect --database <url> [--schema public] [--tables a,b] [--out tables.ts] [--check]
                                                                   write typed table declarations from the database
  cdc-views init --database <url> [--dir .] [--force]              scaffold views.config.ts, tables.ts and .env
  (cdc-views <command> --help for the options of introspect and init)

Options:
  -c, --config <file>   views config (TypeScript or JavaScript); default ./views.config.ts
  -p, --port <n>        HTTP port (default $PORT or 4000)
      --host <addr>     listen address (default $HOST or 127.0.0.1)
      --api-only        serve GraphQL from Redis only (no source, no lease); run beside one --ingest-only
      --ingest-only     keep the views only: /health, /ready, /metrics, no GraphQL
      --reactions-only  run the config's reactions only (workers share each reaction's changes)
  -h, --help            this help
  -v, --version         print the version

Environment:
  DATABASE_URL   PostgreSQL source (source.postgres)     REDIS_URL   where the views live
  KAFKA_BROKERS  Kafka brokers (source.kafka)            LOG_LEVEL   pino level (info)
  NODE_ENV=production  turns GraphiQL and introspection off
  CDC_VIEWS_JWT_SECRET      HS256 secret for api.auth.jwt     CDC_VIEWS_METRICS_TOKEN  bearer token for /metrics
`;

export async function loadConfig(file: string): Promise<Config> {
  const module = (await import(pathToFileURL(resolve(file)).href)) as { default?: Config };
  if (!module.default)
    throw new ServiceError(
      'CONFIG_INVALID',
      `Expected ${file} to export a config as default (export default defineConfig({ … }))`,
    );
  return module.default;
}

/** Redis bytes of a view's operator state (join sides, groups, top-N members: `s:<storage>/*`). */
async function operatorStateBytes(
  redis: Awaited<ReturnType<typeof connectRedis>>,
  prefix: string,
  storage: string,
): Promise<number> {
  let total = 0;
  for await (const keys of scanKeys(redis, viewStatePattern(prefix, storage))) {
    for (const key of keys) total += (await redis.sendCommand<number | null>(['MEMORY', 'USAGE', key])) ?? 0;
  }
  return total;
}

/** Per reaction: its condition, pending, not yet delivered, dead letters, last error; a warning when one is far behind. */
async function reactionStatus(
  redis: Awaited<ReturnType<typeof connectRedis>>,
  prefix: string,
  config: Config,
): Promise<string[]> {
  const lines: string[] = [];
  for (const b of await reactionBacklogs(redis, prefix, config)) {
    const reaction = config.reactions![b.reaction]!;
    const when =
      reaction.conditions.length > 0
        ? ` when ${reaction.conditions.map(describeCondition).join(' and ')}`
        : '';
    if (!b.joined) {
      lines.push(
        `  reaction ${b.reaction.padEnd(20)} on ${b.view}: not joined yet (its group is created once the view is live, by the process writing the views)  dead letters ${b.deadLetters}`,
      );
    } else {
      lines.push(
        `  reaction ${b.reaction.padEnd(20)} on ${b.view}: pending ${b.pending}  not yet delivered ${b.undelivered ?? '?'}  dead letters ${b.deadLetters}  consumers ${b.consumers}`,
      );
    }
    if (when) lines.push(`    ${when.trim()}`);
    const counts = ['handled', 'skipped', 'retried', 'dead-lettered', 'lost']
      .map((o) => `${o} ${b.counts[o] ?? 0}`)
      .join('  ');
    lines.push(`    ${counts}`);
    if (b.lastError)
      lines.push(
        `    last error ${new Date(b.lastError.at).toISOString()} (${b.lastError.idempotencyKey}): ${b.lastError.error}`,
      );
    if (b.behind) {
      lines.push(
        `    ⚠ ${b.pending + (b.undelivered ?? 0)} changes wait (more than warnBacklog ${reaction.warnBacklog}): the changelog keeps them until the reaction handles them${b.consumers === 0 ? '; no worker has ever run it (start, or start --reactions-only)' : ''}`,
      );
    }
  }
  return lines;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', default: 'views.config.ts' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'api-only': { type: 'boolean' },
      'ingest-only': { type: 'boolean' },
      'reactions-only': { type: 'boolean' },
      // `reactions replay <name> --from-dead-letters`: the dead letters are what replay reads (the flag says so).
      'from-dead-letters': { type: 'boolean' },
      // check, verify, slot drop, introspect and init (cli/introspect.ts, cli/init.ts)
      database: { type: 'string', short: 'd' },
      offline: { type: 'boolean' },
      schema: { type: 'string' },
      tables: { type: 'string' },
      out: { type: 'string', short: 'o' },
      check: { type: 'boolean' },
      dir: { type: 'string' },
      force: { type: 'boolean' },
      wait: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (values.help && (command === 'introspect' || command === 'init')) {
    process.stdout.write(command === 'init' ? INIT_HELP : INTROSPECT_HELP);
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(HELP);
    return command || values.help ? 0 : 1;
  }
  if (command === 'introspect') return runIntrospect(values);
  if (command === 'init') return runInit(values);
  const config = await loadConfig(values.config);
  switch (command) {
    case 'check': {
      const registry = createRegistry(config);
      process.stdout.write(
        `✔ ${values.config}: ${registry.views.length} views over ${registry.tables.length} tables\n`,
      );
      for (const v of registry.views)
        process.stdout.write(`  ${v.name} (${v.kind}, key: ${v.keyFields.map((f) => f.name).join(', ')})\n`);
      if (values.offline || config.source.kind !== 'postgres') return 0;
      const databaseUrl = values.database ?? config.source.url ?? process.env['DATABASE_URL'];
      if (!databaseUrl) {
        process.stdout.write(
          '(no database URL — DATABASE_URL, source.postgres.url or --database: the live checks were skipped)\n',
        );
        return 0;
      }
      const db = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
      try {
        await db.connect();
      } catch (error) {
        process.stdout.write(
          `✖ the source database cannot be reached: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        return 1;
      }
      try {
        const live = await checkLiveSource(
          db,
          tableRequirements(registry),
          config.source.slot ?? 'cdc_views',
          config.source.publication ?? 'cdc_views',
        );
        if (live.problems.length === 0)
          process.stdout.write(
            '✔ the source database fits: tables, columns, keys, replica identity, wal_level, role, publication, slot\n',
          );
        for (const p of live.problems) process.stdout.write(`✖ ${p}\n`);
        for (const n of live.notes) process.stdout.write(`  ${n}\n`);
        return live.problems.length > 0 ? 1 : 0;
      } finally {
        await db.end();
      }
    }
    case 'sql': {
      const registry = createRegistry(config);
      const views = rest.length ? registry.views.filter((v) => rest.includes(v.name)) : registry.views;
      for (const v of views) process.stdout.write(`-- ${v.name}\n${v.sql};\n\n`);
      return 0;
    }
    case 'schema':
      process.stdout.write(printViewSchema(createRegistry(config)));
      return 0;
    case 'status': {
      const registry = createRegistry(config);
      const url = config.redis?.url ?? process.env['REDIS_URL'];
      if (!url) throw new ServiceError('CONFIG_INVALID', 'Set REDIS_URL (or redis.url in the config)');
      const redis = await connectRedis(url);
      const prefix = keyPrefix(registry.name);
      const stored = await readStoredState(redis, prefix);
      const lease = await redis.sendCommand<string | null>(['GET', leaseKey(prefix)]);
      const deadLetters = await redis.sendCommand<number>(['XLEN', deadLetterKey(prefix)]);
      const checkpoint =
        stored.checkpoint?.map((p) => `${p.stream}=${p.token}`).join(' ') ?? '(none: snapshot pending)';
      process.stdout.write(
        `deployment ${registry.name}  writer ${lease ?? '(none)'}  step ${stored.step ?? '-'}  checkpoint ${checkpoint}  dead letters ${deadLetters}\n`,
      );
      if (stored.rebuild) process.stdout.write(`  rebuild requested: ${stored.rebuild}\n`);
      for (const v of registry.views) {
        const rows = await redis.sendCommand<number>(['HLEN', rowsKey(prefix, v.storage)]);
        const bytes =
          (await redis.sendCommand<number | null>(['MEMORY', 'USAGE', rowsKey(prefix, v.storage)])) ?? 0;
        // This config's definition built beside the one served (a swap): show that one's progress.
        const beside =
          stored.next.get(v.name)?.fingerprint === v.fingerprint ? stored.next.get(v.name) : undefined;
        const status = beside ?? stored.views.get(v.name);
        const state = `${status?.state ?? 'missing'}${stored.busy.has(v.name) ? ' (applying a large transaction)' : ''}`;
        const version = await currentVersion(redis, prefix, v);
        const stateBytes = await operatorStateBytes(redis, prefix, v.storage);
        const changed = Number(version.split('-')[0]);
        const ago = changed > 0 ? `${Math.max(0, Math.round((Date.now() - changed) / 1000))} s ago` : '—';
        process.stdout.write(
          `  ${v.name.padEnd(24)} ${state.padEnd(9)} rows ${String(rows).padStart(8)}  ~${String(bytes).padStart(10)} B  operator state ~${String(stateBytes).padStart(10)} B  last change ${ago.padStart(9)}  version ${version}\n`,
        );
        if (status?.reason && status.state !== 'live') process.stdout.write(`    ${status.reason}\n`);
        if (beside)
          process.stdout.write('    its old definition serves until this one is built and swapped in\n');
        if (status?.state === 'building' && status.backfill)
          for (const line of describeBackfill(status)) process.stdout.write(`    ${line}\n`);
        if (stored.requests.has(v.name))
          process.stdout.write(`    rebuild requested: ${stored.requests.get(v.name)}\n`);
      }
      for (const line of await reactionStatus(redis, prefix, config)) process.stdout.write(`${line}\n`);
      await redis.quit();
      return 0;
    }
    case 'rebuild': {
      const registry = createRegistry(config);
      const unknown = rest.filter((v) => !registry.byName.has(v));
      if (rest.length === 0 || unknown.length > 0) {
        throw new ServiceError(
          'CONFIG_INVALID',
          `Expected views of this config (${registry.views.map((v) => v.name).join(', ')}), but found ${rest.length === 0 ? 'none' : unknown.join(', ')}`,
        );
      }
      const url = config.redis?.url ?? process.env['REDIS_URL'];
      if (!url) throw new ServiceError('CONFIG_INVALID', 'Set REDIS_URL (or redis.url in the config)');
      const redis = await connectRedis(url);
      const prefix = keyPrefix(registry.name);
      try {
        const asked = `asked for by cdc-views rebuild at ${new Date().toISOString()}`;
        await redis.sendCommand(['HSET', requestsKey(prefix), ...rest.flatMap((v) => [v, asked])]);
        const writer = await redis.sendCommand<string | null>(['GET', leaseKey(prefix)]);
        process.stdout.write(
          `Asked to rebuild ${rest.join(', ')} (with the views reading them) while the other views stay live: ${writer ? `the writer (${writer}) starts within a second` : 'no writer runs now; the next start does it'}.\n`,
        );
        if (!values.wait) return 0;
        // Until the request was taken and every asked view is live again, showing each table's progress.
        let shown = '';
        for (;;) {
          await new Promise((r) => setTimeout(r, 500));
          const stored = await readStoredState(redis, prefix);
          const pending = rest.filter((v) => stored.requests.has(v) || stored.views.get(v)?.state !== 'live');
          const stopped = rest.filter((v) => stored.views.get(v)?.state === 'stopped');
          if (stopped.length > 0) {
            process.stderr.write(
              `Stopped: ${stopped.map((v) => `${v} (${stored.views.get(v)!.reason ?? 'no reason'})`).join('; ')}\n`,
            );
            return 1;
          }
          if (pending.length === 0) break;
          const progress = pending.flatMap((v) => {
            const status = stored.views.get(v);
            return stored.requests.has(v)
              ? [`${v}: waiting for the writer`]
              : status?.backfill
                ? describeBackfill(status).map((l) => `${v}: ${l}`)
                : [`${v}: ${status?.state ?? 'missing'}`];
          });
          const text = progress.join('\n');
          if (text !== shown) process.stdout.write(`${text}\n`);
          shown = text;
        }
        process.stdout.write(`Rebuilt: ${rest.join(', ')} are live.\n`);
        return 0;
      } finally {
        redis.destroy();
      }
    }
    case 'verify': {
      if (config.source.kind !== 'postgres')
        throw new ServiceError(
          'CONFIG_INVALID',
          'Expected source.postgres: verify runs each view’s SQL on the source database (PostgreSQL)',
        );
      const databaseUrl = values.database ?? config.source.url ?? process.env['DATABASE_URL'];
      if (!databaseUrl)
        throw new ServiceError(
          'CONFIG_INVALID',
          'No database to verify against: set DATABASE_URL, source.postgres.url or --database',
        );
      const registry = createRegistry(config);
      const unknown = rest.filter((v) => !registry.byName.has(v));
      if (unknown.length > 0)
        throw new ServiceError(
          'CONFIG_INVALID',
          `Expected views of this config (${registry.views.map((v) => v.name).join(', ')}), but found ${unknown.join(', ')}`,
        );
      const url = config.redis?.url ?? process.env['REDIS_URL'];
      if (!url) throw new ServiceError('CONFIG_INVALID', 'Set REDIS_URL (or redis.url in the config)');
      const redis = await connectRedis(url);
      // Every value as PostgreSQL's text (a Date would lose microseconds), decoded like the oracle's.
      const db = new pg.Client({
        connectionString: databaseUrl,
        types: { getTypeParser: () => (text: string) => text },
      });
      await db.connect();
      try {
        const say = (line: string): void => void process.stdout.write(`${line}\n`);
        say(
          `verify ${registry.name}: ${rest.length || registry.views.length} views against their SQL on the source database`,
        );
        const verdicts = await verifyViews(
          {
            registry,
            redis,
            prefix: keyPrefix(registry.name),
            db,
            slot: config.source.slot ?? 'cdc_views',
            log: say,
          },
          rest,
        );
        for (const v of verdicts) {
          if (v.unverified !== undefined) {
            say(`  ? ${v.view.padEnd(24)} not verified: ${v.unverified}`);
            continue;
          }
          if (v.differing.length === 0) {
            say(`  ✔ ${v.view.padEnd(24)} ${v.rows} rows equal`);
            continue;
          }
          say(`  ✘ ${v.view.padEnd(24)} ${v.differing.length} keys differ`);
          for (const d of v.differing.slice(0, 20))
            say(
              `      key ${d.key}\n        view ${JSON.stringify(d.view)}\n        sql  ${JSON.stringify(d.sql)}`,
            );
          if (v.differing.length > 20) say(`      … and ${v.differing.length - 20} more`);
        }
        // A view that could not be compared is not known to be right either.
        return verdicts.some((v) => v.differing.length > 0 || v.unverified !== undefined) ? 1 : 0;
      } finally {
        await db.end();
        redis.destroy();
      }
    }
    case 'slot': {
      const [action] = rest;
      if (action !== 'drop')
        throw new ServiceError('CONFIG_INVALID', `Expected 'slot drop', but found 'slot ${rest.join(' ')}'`);
      if (config.source.kind !== 'postgres')
        throw new ServiceError(
          'CONFIG_INVALID',
          'Expected source.postgres: only a PostgreSQL source has a replication slot',
        );
      const databaseUrl = values.database ?? config.source.url ?? process.env['DATABASE_URL'];
      if (!databaseUrl)
        throw new ServiceError(
          'CONFIG_INVALID',
          'No database: set DATABASE_URL, source.postgres.url or --database',
        );
      const slot = config.source.slot ?? 'cdc_views';
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const row = (
          await db.query<{ active: boolean; active_pid: number | null; retained: string | null }>(
            'SELECT active, active_pid, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained FROM pg_replication_slots WHERE slot_name = $1',
            [slot],
          )
        ).rows[0];
        if (!row) {
          process.stderr.write(`There is no replication slot '${slot}' in this database.\n`);
          return 1;
        }
        if (row.active && !values.force) {
          process.stderr.write(
            `Replication slot '${slot}' is in use (by backend ${row.active_pid}): a service is streaming from it. Stop it first, or pass --force to end that connection and drop the slot anyway.\n`,
          );
          return 1;
        }
        const mib = (Number(row.retained ?? 0) / 1024 ** 2).toFixed(1);
        // Forced: end the connection streaming from it, and again if its service reconnects first.
        for (let attempt = 1; ; attempt++) {
          await db.query(
            'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
            [slot],
          );
          try {
            await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
            break;
          } catch (error) {
            if (!(error instanceof Error && /is active for PID/.test(error.message)) || attempt === 50)
              throw error;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
        process.stdout.write(
          `Dropped replication slot '${slot}': ${mib} MiB of WAL it retained on the primary can be recycled. The next start of deployment '${createRegistry(config).name}' finds no slot and rebuilds every view from a fresh snapshot (its views are unavailable until they are live again).\n`,
        );
        return 0;
      } finally {
        await db.end();
      }
    }
    case 'reactions': {
      const [action, name] = rest;
      if (action !== 'replay' || !name)
        throw new ServiceError(
          'CONFIG_INVALID',
          `Expected 'reactions replay <name>', but found 'reactions ${rest.join(' ')}'`,
        );
      const reaction = config.reactions?.[name];
      if (!reaction)
        throw new ServiceError(
          'CONFIG_INVALID',
          `Expected the name of a reaction of this config (${Object.keys(config.reactions ?? {}).join(', ') || 'none'}), but found '${name}'`,
        );
      const registry = createRegistry(config);
      const url = config.redis?.url ?? process.env['REDIS_URL'];
      if (!url) throw new ServiceError('CONFIG_INVALID', 'Set REDIS_URL (or redis.url in the config)');
      const redis = await connectRedis(url);
      try {
        const { replayed, failed } = await replayDeadLetters(
          redis,
          keyPrefix(registry.name),
          name,
          reaction,
          (message) => process.stderr.write(`${message}\n`),
        );
        process.stdout.write(
          `${name}: ${replayed} replayed, ${failed} still failing (left in the dead letters)\n`,
        );
        return failed > 0 ? 1 : 0;
      } finally {
        await redis.quit();
      }
    }
    case 'start': {
      if ([values['api-only'], values['ingest-only'], values['reactions-only']].filter(Boolean).length > 1) {
        throw new ServiceError(
          'CONFIG_INVALID',
          'Expected at most one of --api-only, --ingest-only and --reactions-only',
        );
      }
      const logger = createLogger();
      const service = await startService({
        config,
        logger,
        role: values['api-only']
          ? 'api'
          : values['ingest-only']
            ? 'ingest'
            : values['reactions-only']
              ? 'reactions'
              : 'all',
        // On a terminal, a bar per table for snapshots and backfills (the log lines say it elsewhere).
        ...(process.stderr.isTTY ? { onSnapshotProgress: terminalProgress(process.stderr) } : {}),
        ...(values.port ? { port: Number(values.port) } : {}),
        ...(values.host ? { host: values.host } : {}),
      });
      const stop = async (signal: string): Promise<void> => {
        logger.info({ signal }, 'stopping');
        await service.stop();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      await service.done;
      await service.stop();
      return 0;
    }
    default:
      process.stderr.write(`Unknown command '${command}'.\n\n${HELP}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof CliError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(error.exitCode);
    }
    // parseArgs: an unknown option, a missing value.
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(
        `${(error as Error).message}\nRun cdc-views --help for the commands and options.\n`,
      );
      process.exit(2);
    }
    if (
      error instanceof ConfigError ||
      (error instanceof ServiceError && (error.code === 'CONFIG_INVALID' || error.code === 'SOURCE_SCHEMA'))
    ) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
