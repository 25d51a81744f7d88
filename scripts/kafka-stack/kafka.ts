/**
 * Starting Kafka in KRaft mode (startKafka): one combined broker + controller, on free loopback ports.
 *
 *
 *   startKafka()              java kafka.tools.StorageTool format  →  java -Xmx512m kafka.Kafka server.properties
 *     └─ KRaft broker+controller on 127.0.0.1:<free>/<free>, in a temp dir; ready when kafkajs admin.listTopics() answers
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { freePort } from '../servers.ts';
import { fetchStack } from './fetch.ts';
import {
  captureOutput,
  defaultLog,
  exited,
  firstLine,
  javaBinary,
  liveDirs,
  type Log,
  log4jConfig,
  properties,
  run,
  sleep,
  spawnServer,
  stopChild,
  tail,
  track,
  untrackDir,
} from './processes.ts';
import { KAFKA_VERSION } from './versions.ts';

const { Kafka, logLevel } = kafkajs;

export interface KafkaOptions {
  readonly log?: Log;
  /** -Xmx in MB (default 512). */
  readonly heapMb?: number;
  /** Give up if the broker does not answer within this time (default 90 s). */
  readonly startTimeoutMs?: number;
  /** Extra or overriding server.properties entries. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface RunningKafka {
  /** Bootstrap addresses, `127.0.0.1:<port>`. */
  readonly brokers: string[];
  /** The temp folder (server.properties, data/, logs/server.log); removed by stop(). */
  readonly dir: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

/** Kafka's random cluster id: 16 random bytes, base64url without padding, never starting with '-'. */
function kafkaClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** Start a single-node KRaft Kafka (broker + controller) in a temp dir on free loopback ports. */
export async function startKafka(options: KafkaOptions = {}): Promise<RunningKafka> {
  const log = options.log ?? defaultLog;
  const stack = await fetchStack(log);
  const java = javaBinary();
  const began = Date.now();
  const [port, controllerPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-kafka-'));
  liveDirs.add(dir);
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const logFile = join(logs, 'server.log');
  const config = join(dir, 'server.properties');
  writeFileSync(
    config,
    properties({
      'process.roles': 'broker,controller',
      'node.id': 1,
      'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
      listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
      'inter.broker.listener.name': 'PLAINTEXT',
      'controller.listener.names': 'CONTROLLER',
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      'log.dirs': join(dir, 'data'),
      'num.partitions': 1,
      'default.replication.factor': 1,
      'min.insync.replicas': 1,
      // kafkajs (and any consumer group) needs __consumer_offsets, which defaults to RF 3.
      'offsets.topic.replication.factor': 1,
      'offsets.topic.num.partitions': 1,
      'transaction.state.log.replication.factor': 1,
      'transaction.state.log.min.isr': 1,
      'share.coordinator.state.topic.replication.factor': 1,
      'share.coordinator.state.topic.min.isr': 1,
      'auto.create.topics.enable': true,
      // One broker, no one to wait for: consumer groups (kafkajs, Connect) form at once.
      'group.initial.rebalance.delay.ms': 0,
      'log.retention.hours': 24,
      ...options.settings,
    }),
  );
  writeFileSync(join(dir, 'log4j2.properties'), log4jConfig(logFile));
  const classpath = join(stack.lib, '*');
  const jvm = [
    `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${logs}`,
    '-Djava.awt.headless=true',
  ];
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child) await stopChild(child, 'SIGTERM');
    untrackDir(dir);
  };
  try {
    await run(
      java,
      [...jvm, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', kafkaClusterId(), '-c', config],
      {
        what: 'Formatting the KRaft storage',
        hint: `Check ${config}; the jars are in ${stack.lib}.`,
      },
    );
    const heap = options.heapMb ?? 512;
    child = spawnServer(java, [`-Xmx${heap}m`, `-Xms${Math.min(heap, 128)}m`, ...jvm, '-cp', classpath, 'kafka.Kafka', config], dir, true);
    track(child, dir);
    const output = captureOutput(child);
    const brokers = [`127.0.0.1:${port}`];
    await waitForBroker(brokers, child, options.startTimeoutMs ?? 90_000, () =>
      [output(), tail(logFile, 30)].filter(Boolean).join('\n'),
    );
    log(
      `Kafka ${KAFKA_VERSION} up on ${brokers.join(',')} in ${((Date.now() - began) / 1000).toFixed(1)} s (logs: ${logFile})`,
    );
    return { brokers, dir, logFile, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitForBroker(
  brokers: string[],
  child: ChildProcess,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const kafka = new Kafka({
    clientId: 'cdc-views-kafka-stack',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 0 },
  });
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (exited(child)) {
      throw new Error(
        `Kafka: expected the broker to keep running, but it exited with ${child.exitCode ?? child.signalCode}.\n${output()}\nHint: a port taken or too little memory are the usual causes.`,
      );
    }
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return;
    } catch (error) {
      lastError = firstLine(error);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await sleep(250);
  }
  throw new Error(
    `Kafka: expected the broker on ${brokers.join(',')} to answer listTopics within ${timeoutMs} ms, but it did not (last error: ${lastError}).\n${output()}`,
  );
}
