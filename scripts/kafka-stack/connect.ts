/**
 * Starting Kafka Connect (startConnect): one worker in distributed mode, and its REST client.
 *
 *
 *   startConnect({brokers})   java -Xmx1g org.apache.kafka.connect.cli.ConnectDistributed connect.properties
 *     └─ distributed worker (configs, offsets, statuses in RF-1 Kafka topics) with REST on 127.0.0.1:<free>;
 *        ready when GET /health is 200 and the worker logged "Finished starting connectors and tasks".
 *        register → PUT /connectors/<name>/config · waitForRunning → GET …/status · remove → DELETE
 *        restart → stop the JVM (SIGTERM or SIGKILL), start it again on the same topics and port
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../servers.ts';
import { fetchStack } from './fetch.ts';
import {
  captureOutput,
  defaultLog,
  exited,
  javaBinary,
  liveDirs,
  type Log,
  log4jConfig,
  properties,
  sleep,
  spawnServer,
  stopChild,
  tail,
  track,
  untrackDir,
} from './processes.ts';
import { KAFKA_VERSION } from './versions.ts';

export interface ConnectOptions {
  readonly brokers: readonly string[];
  readonly log?: Log;
  /** -Xmx in MB (default 1024, the most it should get). */
  readonly heapMb?: number;
  /** How often source offsets are committed (default 2000 ms). What was not committed is re-sent after a kill. */
  readonly offsetFlushIntervalMs?: number;
  /** Give up if the worker is not ready within this time (default 120 s). */
  readonly startTimeoutMs?: number;
  /** Extra or overriding worker properties. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface ConnectorStatus {
  readonly name: string;
  readonly connector: { readonly state: string; readonly worker_id: string; readonly trace?: string };
  readonly tasks: ReadonlyArray<{
    readonly id: number;
    readonly state: string;
    readonly worker_id: string;
    readonly trace?: string;
  }>;
  readonly type?: string;
}

export interface RestartOptions {
  /** SIGKILL instead of SIGTERM: no graceful offset commit, so Debezium re-sends what it had not flushed. */
  readonly kill?: boolean;
}

export interface RunningConnect {
  /** REST base URL, `http://127.0.0.1:<port>` (the same after restart()). */
  readonly url: string;
  /** The temp folder (connect.properties, logs/connect.log); removed by stop(). */
  readonly dir: string;
  readonly logFile: string;
  /** Create or update a connector (PUT /connectors/<name>/config). */
  register(name: string, config: Readonly<Record<string, string>>): Promise<void>;
  /** Wait until the connector and all its tasks are RUNNING; throws at once with the trace if one FAILED. */
  waitForRunning(name: string, timeoutMs?: number): Promise<void>;
  status(name: string): Promise<ConnectorStatus | null>;
  /** Delete a connector (a missing one is not an error). */
  remove(name: string): Promise<void>;
  /** Stop the JVM and start it again with the same internal topics (configs, offsets) and REST port. */
  restart(options?: RestartOptions): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start one Kafka Connect worker in distributed mode. Distributed rather than standalone because the
 * connector configs and source offsets then live in Kafka topics: restart() brings the same connectors back
 * with their offsets, and registration over REST is the same PUT a production cluster takes.
 */
export async function startConnect(options: ConnectOptions): Promise<RunningConnect> {
  const log = options.log ?? defaultLog;
  const stack = await fetchStack(log);
  const java = javaBinary();
  if (options.brokers.length === 0) {
    throw new Error(
      'startConnect: expected at least one broker address (e.g. from startKafka().brokers), but got none.',
    );
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-connect-'));
  liveDirs.add(dir);
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const logFile = join(logs, 'connect.log');
  const id = `cdc-views-connect-${randomBytes(4).toString('hex')}`;
  const config = join(dir, 'connect.properties');
  writeFileSync(
    config,
    properties({
      'bootstrap.servers': options.brokers.join(','),
      listeners: url,
      'rest.advertised.host.name': '127.0.0.1',
      'rest.advertised.port': port,
      'group.id': id,
      'config.storage.topic': `${id}-configs`,
      'offset.storage.topic': `${id}-offsets`,
      'status.storage.topic': `${id}-status`,
      'config.storage.replication.factor': 1,
      'offset.storage.replication.factor': 1,
      'offset.storage.partitions': 1,
      'status.storage.replication.factor': 1,
      'status.storage.partitions': 1,
      'plugin.path': stack.plugins,
      // Debezium's and Kafka's plugins all ship ServiceLoader manifests: no classpath scan, faster start.
      'plugin.discovery': 'service_load',
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': true,
      'value.converter.schemas.enable': true,
      'value.converter.replace.null.with.default': false,
      'offset.flush.interval.ms': options.offsetFlushIntervalMs ?? 2000,
      'topic.creation.enable': true,
      // A single worker: after a SIGKILL its old group member expires sooner, and nothing waits for it to return.
      'session.timeout.ms': 6000,
      'heartbeat.interval.ms': 2000,
      'scheduled.rebalance.max.delay.ms': 0,
      ...options.settings,
    }),
  );
  writeFileSync(join(dir, 'log4j2.properties'), log4jConfig(logFile));
  const heap = Math.min(options.heapMb ?? 1024, 1024);
  const args = [
    `-Xmx${heap}m`,
    `-Xms${Math.min(heap, 128)}m`,
    `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${logs}`,
    '-Djava.awt.headless=true',
    '-cp',
    join(stack.lib, '*'),
    'org.apache.kafka.connect.cli.ConnectDistributed',
    config,
  ];
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  let child: ChildProcess | undefined;
  let output: () => string = () => '';

  const describe = (): string => [output(), tail(logFile, 40)].filter(Boolean).join('\n');

  const launch = async (): Promise<void> => {
    const began = Date.now();
    const logOffset = existsSync(logFile) ? statSync(logFile).size : 0;
    const started = spawnServer(java, args, dir);
    child = started;
    track(started, dir);
    output = captureOutput(started);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited(started)) {
        throw new Error(
          `Kafka Connect: expected the worker to keep running, but it exited with ${started.exitCode ?? started.signalCode}.\n${describe()}\nHint: check the brokers (${options.brokers.join(',')}) are up and the port ${port} is free.`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Kafka Connect: expected ${url}/health to answer 200 and the worker to finish joining its group within ${timeoutMs} ms, but it did not.\n${describe()}`,
        );
      }
      if ((await healthy(url)) && logContains(logFile, logOffset, 'Finished starting connectors and tasks'))
        break;
      await sleep(250);
    }
    log(
      `Kafka Connect ${KAFKA_VERSION} up on ${url} in ${((Date.now() - began) / 1000).toFixed(1)} s (logs: ${logFile})`,
    );
  };

  const request = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string }> => {
    const init: RequestInit = {
      method,
      headers: { 'content-type': 'application/json', accept: 'application/json' },
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(`${url}${path}`, init);
    return { status: response.status, text: await response.text() };
  };

  const status = async (name: string): Promise<ConnectorStatus | null> => {
    const response = await request('GET', `/connectors/${encodeURIComponent(name)}/status`);
    if (response.status === 404) return null;
    if (response.status !== 200) {
      throw new Error(
        `Kafka Connect: expected 200 from GET /connectors/${name}/status, but got ${response.status}: ${response.text}`,
      );
    }
    return JSON.parse(response.text) as ConnectorStatus;
  };

  const running: RunningConnect = {
    url,
    dir,
    logFile,
    status,
    async register(name, connectorConfig) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const response = await request(
          'PUT',
          `/connectors/${encodeURIComponent(name)}/config`,
          connectorConfig,
        );
        if (response.status === 200 || response.status === 201) return;
        // 409: a rebalance is in progress; 503 or a 500 "timed out": the worker is still catching up.
        const transient =
          response.status === 409 ||
          response.status === 503 ||
          (response.status === 500 && /timed out/i.test(response.text));
        if (transient && Date.now() < deadline) {
          await sleep(500);
          continue;
        }
        throw new Error(
          `Kafka Connect: expected PUT /connectors/${name}/config to answer 200/201, but got ${response.status}: ${response.text}\n` +
            `Hint: 400 lists the invalid settings; a 500 is often a failed validation (Kafka 4.3 reports some as a NullPointerException). The worker's last errors:\n${lastErrors(logFile)}`,
        );
      }
    },
    async waitForRunning(name, waitMs = 90_000) {
      const deadline = Date.now() + waitMs;
      let last: ConnectorStatus | null = null;
      while (Date.now() < deadline) {
        last = await status(name);
        if (last) {
          const failed = [last.connector, ...last.tasks].find((s) => s.state === 'FAILED');
          if (failed) {
            throw new Error(
              `Kafka Connect: expected connector '${name}' to be RUNNING, but it FAILED:\n${failed.trace ?? '(no trace)'}\nHint: the worker log is ${logFile}.`,
            );
          }
          if (
            last.connector.state === 'RUNNING' &&
            last.tasks.length > 0 &&
            last.tasks.every((t) => t.state === 'RUNNING')
          )
            return;
        }
        await sleep(500);
      }
      throw new Error(
        `Kafka Connect: expected connector '${name}' and its tasks to be RUNNING within ${waitMs} ms, but the last status was ${JSON.stringify(last)}.\nHint: the worker log is ${logFile}.`,
      );
    },
    async remove(name) {
      const response = await request('DELETE', `/connectors/${encodeURIComponent(name)}`);
      if (response.status === 204 || response.status === 200 || response.status === 404) return;
      throw new Error(
        `Kafka Connect: expected DELETE /connectors/${name} to answer 204, but got ${response.status}: ${response.text}`,
      );
    },
    async restart(restartOptions = {}) {
      if (child) await stopChild(child, restartOptions.kill ? 'SIGKILL' : 'SIGTERM', 30_000);
      await launch();
    },
    async stop() {
      if (child) await stopChild(child, 'SIGTERM', 30_000);
      untrackDir(dir);
    },
  };
  try {
    await launch();
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    await response.text();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** The last ERROR entries of a log4j log, with the first lines of their stack traces. */
function lastErrors(file: string, count = 3): string {
  const lines = tail(file, 400).split('\n');
  const entries: string[] = [];
  lines.forEach((line, i) => {
    if (/^\[[^\]]+\] ERROR /.test(line)) {
      const trace = lines.slice(i + 1, i + 12).filter((l) => !l.startsWith('['));
      entries.push(
        [line, ...trace.filter((l) => /^(Caused by|\S)/.test(l) || trace.indexOf(l) < 2)].join('\n'),
      );
    }
  });
  return entries.slice(-count).join('\n') || '(none)';
}

function logContains(file: string, fromOffset: number, text: string): boolean {
  if (!existsSync(file)) return false;
  const size = statSync(file).size;
  if (size <= fromOffset) return false;
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(size - fromOffset);
    readSync(fd, buffer, 0, buffer.length, fromOffset);
    return buffer.includes(text);
  } finally {
    closeSync(fd);
  }
}
