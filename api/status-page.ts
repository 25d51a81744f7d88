/**
 * The live status page (`/status`): what an operator asks first — is every view live, how far
 * behind, how large, what was parked — and a view's rows changing live. The page is a small
 * Preact + htm app with uPlot charts, served as ES modules straight from node_modules (no build
 * step); it reads `/status.json` every second and a view's rows over GraphQL (a page, then its
 * change subscription over SSE).
 *
 * `/status.json` is read from Redis (any process of the deployment can serve it) plus, in the
 * process writing the views, the last ten minutes of changes applied per second and lag.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { reactionBacklogs } from '../reactions/groups.ts';
import type { Config } from '../views/config.ts';
import { describeBackfill } from '../views/backfill.ts';
import { describeCondition } from '../views/reactions.ts';
import type { Registry } from '../views/registry.ts';
import { deadLetterKey, leaseKey, rowsKey } from '../views/store/keys.ts';
import { currentVersion } from '../views/store/read.ts';
import type { RedisClient } from '../views/store/redis.ts';
import { readStoredState, statusOf, toRecord } from '../views/store/state.ts';

const require = createRequire(import.meta.url);

/** The page's modules: the app, and the libraries it imports (by the page's import map). */
const ASSETS: Record<string, { file: string; type: string }> = {
  'app.js': { file: new URL('./status-page/app.js', import.meta.url).pathname, type: 'text/javascript' },
  'preact.js': {
    file: require.resolve('preact').replace(/preact\.js$/, 'preact.module.js'),
    type: 'text/javascript',
  },
  'hooks.js': {
    file: require.resolve('preact/hooks').replace(/hooks\.js$/, 'hooks.module.js'),
    type: 'text/javascript',
  },
  'htm.js': { file: require.resolve('htm').replace(/htm\.js$/, 'htm.module.js'), type: 'text/javascript' },
  'uplot.js': {
    file: require.resolve('uplot').replace(/uPlot\.cjs\.js$/, 'uPlot.esm.js'),
    type: 'text/javascript',
  },
  'uplot.css': {
    file: require.resolve('uplot').replace(/uPlot\.cjs\.js$/, 'uPlot.min.css'),
    type: 'text/css',
  },
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cdc-views status</title>
<link rel="stylesheet" href="/status/assets/uplot.css">
<script type="importmap">{"imports":{"preact":"/status/assets/preact.js","preact/hooks":"/status/assets/hooks.js","htm":"/status/assets/htm.js","uplot":"/status/assets/uplot.js"}}</script>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.5rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .7rem; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.live { color: #0a7d32; } .building { color: #a66a00; } .stopped, .missing { color: #b3261e; }
.progress { font-size: 0.85em; color: #555; }
.charts { display: flex; gap: 1rem; flex-wrap: wrap; } .flash { background: #fff3c4; }
button.view { all: unset; cursor: pointer; color: #0b57d0; }
</style>
</head>
<body><div id="app">Loading…</div><script type="module" src="/status/assets/app.js"></script></body>
</html>`;

/** Changes applied per second and lag, the last ten minutes (the process writing the views records them). */
export class StatusHistory {
  private readonly seconds = 600;
  readonly t: number[] = [];
  readonly applied: number[] = [];
  readonly lag: (number | null)[] = [];
  private pending = 0;
  private lastCommitUs: number | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** A step landed: its source changes, and the commit time of the newest (µs), when known. */
  record(changes: number, commitTimeUs: number | undefined): void {
    this.pending += changes;
    if (commitTimeUs !== undefined) this.lastCommitUs = commitTimeUs;
  }

  private tick(): void {
    this.t.push(Math.floor(Date.now() / 1000));
    this.applied.push(this.pending);
    this.lag.push(
      this.lastCommitUs === null ? null : Math.max(0, Date.now() / 1000 - this.lastCommitUs / 1e6),
    );
    this.pending = 0;
    for (const series of [this.t, this.applied, this.lag]) if (series.length > this.seconds) series.shift();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface StatusPageOptions {
  readonly config: Config;
  readonly registry: Registry;
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly role: string;
  /** Null in a process that does not write the views (its charts stay empty). */
  readonly history: StatusHistory | null;
}

/** What /status.json answers. */
async function snapshot(options: StatusPageOptions): Promise<unknown> {
  const { registry, redis, prefix } = options;
  const stored = await readStoredState(redis, prefix);
  const views = await Promise.all(
    registry.views.map(async (v) => {
      const [rows, bytes, version] = await Promise.all([
        redis.sendCommand<number>(['HLEN', rowsKey(prefix, v.storage)]),
        redis.sendCommand<number | null>(['MEMORY', 'USAGE', rowsKey(prefix, v.storage)]),
        currentVersion(redis, prefix, v),
      ]);
      const { status, beside } = statusOf(stored, v);
      return {
        name: v.name,
        state: stored.busy.has(v.name) ? 'busy' : (status?.state ?? 'missing'),
        reason: beside
          ? `${status?.reason ?? 'backfilling'} (its old definition serves until this one is swapped in)`
          : (status?.reason ?? null),
        // A view backfilled beside the live ones: each table's rows, rate and time left.
        progress: status?.state === 'building' && status.backfill ? describeBackfill(status) : [],
        rows,
        bytes: bytes ?? 0,
        version,
        // A version is a stream id: its first part is when the view last changed (ms).
        lastChangeAt: Number(version.split('-')[0]) || null,
        key: v.keyFields.map((f) => f.name),
        fields: v.fields.map((f) => f.name),
      };
    }),
  );
  const [deadLetterCount, recent] = await Promise.all([
    redis.sendCommand<number>(['XLEN', deadLetterKey(prefix)]),
    redis.sendCommand<[string, string[]][]>(['XREVRANGE', deadLetterKey(prefix), '+', '-', 'COUNT', '10']),
  ]);
  const writer = await redis.sendCommand<string | null>(['GET', leaseKey(prefix)]);
  return {
    deployment: registry.name,
    servedBy: options.role,
    now: Date.now(),
    writer,
    step: stored.step,
    checkpoint: stored.checkpoint,
    rebuild: stored.rebuild,
    views,
    deadLetters: {
      count: deadLetterCount,
      recent: recent.map(([id, fields]) => {
        const f = toRecord(fields);
        return {
          at: Number(id.split('-')[0]),
          reason: f['reason'] ?? '',
          change: (f['change'] ?? '').slice(0, 300),
        };
      }),
    },
    reactions: (await reactionBacklogs(redis, prefix, options.config)).map((b) => ({
      ...b,
      when:
        options.config.reactions![b.reaction]!.conditions.map(describeCondition).join(' and ') ||
        'every change',
      warnBacklog: options.config.reactions![b.reaction]!.warnBacklog,
    })),
    history: options.history
      ? { t: options.history.t, applied: options.history.applied, lag: options.history.lag }
      : null,
  };
}

/** Answers /status, /status/assets/* and /status.json; false for any other path. */
export function statusPage(
  options: StatusPageOptions,
): (path: string, req: IncomingMessage, res: ServerResponse) => boolean {
  const assets = new Map(
    Object.entries(ASSETS).map(([name, a]) => [name, { body: readFileSync(a.file), type: a.type }]),
  );
  return (path, _req, res) => {
    if (path === '/status') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
      return true;
    }
    if (path.startsWith('/status/assets/')) {
      const asset = assets.get(path.slice('/status/assets/'.length));
      if (!asset) return false;
      res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'max-age=3600' });
      res.end(asset.body);
      return true;
    }
    if (path === '/status.json') {
      snapshot(options).then(
        (body) => {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end(JSON.stringify(body));
        },
        (error: unknown) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: `the status could not be read: ${error instanceof Error ? error.message : String(error)}`,
            }),
          );
        },
      );
      return true;
    }
    return false;
  };
}
