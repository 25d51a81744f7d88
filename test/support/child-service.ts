/**
 * The service as users run it: `cdc-views start --config <file>` in a child process, which a test
 * can SIGKILL at any moment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../scripts/servers.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Where a test run keeps its scratch files (removed with the run; see global-setup.ts). */
export function scratchDir(): string {
  return process.env['CDC_VIEWS_SCRATCH'] ?? tmpdir();
}
export const CLI = join(REPO, 'bin/cdc-views.js');

/**
 * A config file (.mts: ESM even without a package.json around it) that reuses the shop views.
 * The suite's Redis runs without persistence on purpose: durability 'none' says so (no warning),
 * unless a test asks for 'auto'.
 */
function writeConfigFile(
  name: string,
  redisUrl: string,
  sourceExpression: string,
  options: ConfigFileOptions = {},
): string {
  const file = join(mkdtempSync(join(scratchDir(), 'config-')), 'views.config.mts');
  writeFileSync(
    file,
    `import shop, { customers, products, orders, orderItems } from ${JSON.stringify(join(REPO, 'examples/shop/views.config.ts'))};
import { source, view, count, sum, min, max, avg } from ${JSON.stringify(join(REPO, 'index.ts'))};
const views = ${JSON.stringify(options.views ?? null)};
const kept = views ? Object.fromEntries(Object.entries(shop.views).filter(([v]) => views.includes(v))) : shop.views;
void [customers, products, orders, orderItems, view, count, sum, min, max, avg];
export default { ...shop, reactions: {}, views: { ...kept, ...(${options.extraViews ?? '{}'}) }, ...${JSON.stringify(options.api ? { api: options.api } : {})}, name: ${JSON.stringify(name)}, source: ${sourceExpression}, redis: { url: ${JSON.stringify(redisUrl)}, leaseTtlMs: 1500, durability: { mode: ${JSON.stringify(options.durability ?? 'none')} }${options.fanoutChunk ? `, fanoutChunk: ${options.fanoutChunk}` : ''} } };
`,
  );
  return file;
}

export interface ConfigFileOptions {
  /** The durability mode (default 'none': the suite's Redis has no persistence). */
  readonly durability?: 'auto' | 'none';
  /** Only these of the shop's views (default: all). */
  readonly views?: readonly string[];
  /**
   * Views added to (or replacing) the shop's: a TypeScript object expression that may use the shop's
   * tables (customers, products, orders, orderItems) and view, count, sum, min, max, avg.
   */
  readonly extraViews?: string;
  /** The config's `api` section (JSON: limits, cors, auth with a secret…). */
  readonly api?: Record<string, unknown>;
  /** redis.fanoutChunk: join keys with more rows on the other side are joined in chunks. */
  readonly fanoutChunk?: number;
}

/** The shop views on the embedded PostgreSQL source, under their own deployment name, slot and publication. */
export function writeShopConfig(
  databaseUrl: string,
  redisUrl: string,
  name: string,
  options: ConfigFileOptions & { transactionPartChanges?: number } = {},
): string {
  const source = {
    url: databaseUrl,
    slot: name,
    publication: name,
    ...(options.transactionPartChanges ? { transactionPartChanges: options.transactionPartChanges } : {}),
  };
  return writeConfigFile(name, redisUrl, `source.postgres(${JSON.stringify(source)})`, options);
}

/** The shop views fed by Debezium over Kafka (`source.kafka`), under their own deployment name and consumer group. */
export function writeKafkaShopConfig(
  options: {
    brokers: readonly string[];
    topicPrefix: string;
    groupId?: string;
    transactionPartChanges?: number;
  },
  redisUrl: string,
  name: string,
): string {
  return writeConfigFile(
    name,
    redisUrl,
    `source.kafka(${JSON.stringify({ ...options, transactions: true })})`,
  );
}

export interface ChildService {
  readonly process: ChildProcess;
  readonly url: string;
  readonly output: () => string;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

export async function startChildService(
  configFile: string,
  env: Record<string, string> = {},
  args: readonly string[] = [],
): Promise<ChildService> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=64', CLI, 'start', '--config', configFile, '--port', String(port), ...args],
    {
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal!)),
  );
  const url = `http://127.0.0.1:${port}/graphql`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`cdc-views exited with ${child.exitCode}:\n${output}`);
    const up = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) throw new Error(`cdc-views did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { process: child, url, output: () => output, exited };
}
