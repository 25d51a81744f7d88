/**
 * The real Kafka + Kafka Connect + Debezium stack for the tests, the demo and CI, without Docker:
 * plain `java` processes on loopback, jars fetched once from Maven Central with `mvn`.
 *
 *   fetchStack()              mvn -q -B dependency:copy-dependencies@lib dependency:unpack@plugins
 *     └─ ~/.cache/cdc-views/stack-4.3.1-3.6.1.Final/        (or $CDC_VIEWS_STACK_CACHE; `.complete` marks it done)
 *          lib/*.jar                     Kafka broker, tools, Connect runtime, JsonConverter, log4j2 + slf4j binding
 *          plugins/debezium-connector-{postgres,mysql}/ (3.6.1), plugins/debezium-connector-mariadb/ (3.5.0)
 *                                        Debezium's `plugin` tar.gz, unpacked; or, if that is not served, each connector
 *                                        jar + its runtime dependencies minus what Connect provides (Kafka, Jackson)
 *
 *   startKafka()              java kafka.tools.StorageTool format  →  java -Xmx512m kafka.Kafka server.properties
 *     └─ KRaft broker+controller on 127.0.0.1:<free>/<free>, in a temp dir; ready when kafkajs admin.listTopics() answers
 *
 *   startConnect({brokers})   java -Xmx1g org.apache.kafka.connect.cli.ConnectDistributed connect.properties
 *     └─ distributed worker (configs, offsets, statuses in RF-1 Kafka topics) with REST on 127.0.0.1:<free>;
 *        ready when GET /health is 200 and the worker logged "Finished starting connectors and tasks".
 *        register → PUT /connectors/<name>/config · waitForRunning → GET …/status · remove → DELETE
 *        restart → stop the JVM (SIGTERM or SIGKILL), start it again on the same topics and port
 *
 *   startMariaDb()            mariadb-install-db  →  mariadbd --log-bin --binlog-format=ROW --binlog-row-image=FULL
 *     └─ on 127.0.0.1:<free>, in a temp dir, root + a `debezium` replication user
 *
 *   postgresConnectorConfig() / mariadbConnectorConfig()   the Debezium configs the tests and docker-compose use
 *
 * CLI:  npx tsx scripts/kafka-stack.ts fetch          — fetch the jars only
 *       npx tsx scripts/kafka-stack.ts up             — start Kafka + Connect, print their addresses; Ctrl-C stops them
 *       npx tsx scripts/kafka-stack.ts register-json  — print deploy/debezium/register-postgres.json
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import kafkajs from 'kafkajs';
import { freePort, MissingBinaryError, spawnGuarded, type GuardedProcess } from './servers.ts';
import { fixFor, locate } from './provision.ts';

const { Kafka, logLevel } = kafkajs;

export const KAFKA_VERSION = '4.3.1';
/** Debezium 3.6.1.Final is built against Kafka 4.3.0 (`version.kafka` in its pom.xml). */
export const DEBEZIUM_VERSION = '3.6.1.Final';
/** The log4j2 that Kafka 4.3.1 depends on; the slf4j 1.x binding must match it. */
export const LOG4J_VERSION = '2.25.4';
const MAVEN_DEPENDENCY_PLUGIN = '3.8.1';
/**
 * The MariaDB connector's version. MariaDB is read with `debezium-connector-mariadb`, not the MySQL connector:
 * MySQL connector 3.6.1 takes MariaDB 10.11's VERSION() "10.11.x" for MySQL ≥ 8.4, sends SHOW BINARY LOG STATUS,
 * and fails ("should support SHOW BINARY LOG STATUS but it failed"). The MariaDB connector 3.6.x is not served
 * by the Maven Central this project reaches (3.6.1 and 3.6.0 were asked for: "not found"); 3.5.0.Final is.
 */
export const DEBEZIUM_MARIADB_VERSION = '3.5.0.Final';

/**
 * The Debezium connectors fetched, each a folder under `plugins/` (Connect isolates them from each other). The MySQL
 * connector is fetched for MySQL users; nothing here runs it (MariaDB needs the MariaDB connector, see above).
 */
export const DEBEZIUM_CONNECTORS: ReadonlyArray<{ readonly artifactId: string; readonly version: string }> = [
  { artifactId: 'debezium-connector-postgres', version: DEBEZIUM_VERSION },
  { artifactId: 'debezium-connector-mysql', version: DEBEZIUM_VERSION },
  { artifactId: 'debezium-connector-mariadb', version: DEBEZIUM_MARIADB_VERSION },
];

export type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[kafka-stack] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Child-process bookkeeping: whatever we start dies with us, even if a test forgets stop().

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;
function track(child: ChildProcess, dir?: string): void {
  liveChildren.add(child);
  if (dir) liveDirs.add(dir);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) {
        const guarded = guards.get(c);
        if (guarded) guarded.kill();
        else c.kill('SIGKILL');
      }
      for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
    });
  }
}
function untrackDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Servers started under a guard (scripts/servers.ts spawnGuarded): they die with this process. */
const guards = new WeakMap<ChildProcess, GuardedProcess>();

/** `removeDir`: the guard deletes `cwd` once the server is gone (not for Connect, which restarts in it). */
function spawnServer(program: string, args: readonly string[], cwd: string, removeDir = false): ChildProcess {
  const guarded = spawnGuarded(program, args, { stopSignal: 'TERM', cwd, ...(removeDir ? { dir: cwd } : {}) });
  guards.set(guarded.child, guarded);
  return guarded.child;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<void> {
  if (exited(child)) return Promise.resolve();
  const guarded = guards.get(child);
  if (guarded) {
    if (signal !== 'SIGKILL') return guarded.stop(graceMs);
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    guarded.kill();
    return gone;
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last `lines` lines of a text file ('' if it does not exist). */
function tail(path: string, lines = 40): string {
  if (!existsSync(path)) return '';
  const size = statSync(path).size;
  const from = Math.max(0, size - 64 * 1024);
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(size - from);
    readSync(fd, buffer, 0, buffer.length, from);
    return buffer.toString('utf8').split('\n').slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** Keeps the last lines a process printed, for error messages. */
function captureOutput(child: ChildProcess, keep = 60): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => lines.join('\n');
}

function findBinary(names: readonly string[], extraDirs: readonly string[] = []): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...extraDirs];
  for (const name of names) {
    for (const dir of dirs) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

function javaBinary(): string {
  // $JAVA_HOME, PATH, or the package manager's JDK (scripts/provision.ts); Java 17 or newer only.
  const found = locate('java')?.path;
  if (!found) {
    throw new MissingBinaryError(
      'java',
      `Kafka 4 and Debezium 3 need Java 17 or newer (\`npm test\` installs it when it may; by hand: ${fixFor('java')}), or set JAVA_HOME.`,
    );
  }
  return found;
}

/** Run a program to completion; reject with its output if it fails. */
function run(
  program: string,
  args: readonly string[],
  options: { cwd?: string; what: string; hint: string; input?: string } = { what: program, hint: '' },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.once('error', (error) =>
      reject(
        new Error(
          `${options.what}: expected to run '${program}', but it failed to start (${error.message}). ${options.hint}`,
        ),
      ),
    );
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(stdout);
      else {
        const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
        reject(
          new Error(
            `${options.what}: expected '${program} ${args.join(' ')}' to exit with 0, but it ended with ${code ?? signal}.\n${output}\n${options.hint}`,
          ),
        );
      }
    });
  });
}

function dirSize(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? dirSize(p) : statSync(p).size;
  }
  return total;
}

function properties(values: Readonly<Record<string, string | number | boolean>>): string {
  return `${Object.entries(values)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n')}\n`;
}

/** A log4j2 configuration that writes everything at INFO to one file (appending across restarts). */
function log4jConfig(file: string): string {
  return properties({
    status: 'warn',
    'appender.file.type': 'File',
    'appender.file.name': 'FILE',
    'appender.file.fileName': file,
    'appender.file.append': 'true',
    'appender.file.layout.type': 'PatternLayout',
    'appender.file.layout.pattern': '[%d] %p %m (%c)%n',
    'rootLogger.level': 'INFO',
    'rootLogger.appenderRef.file.ref': 'FILE',
    'logger.reflections.name': 'org.reflections',
    'logger.reflections.level': 'ERROR',
  });
}

// ---------------------------------------------------------------------------------------------
// fetchStack

export interface StackFiles {
  /** The cache folder. */
  readonly dir: string;
  /** Folder of jars for the broker and Connect's classpath (`lib/*`). */
  readonly lib: string;
  /** Connect's `plugin.path`: one folder per Debezium connector. */
  readonly plugins: string;
  readonly kafkaVersion: string;
  readonly debeziumVersion: string;
}

export interface FetchOptions {
  /** Maven's local repository (`-Dmaven.repo.local`); defaults to Maven's own (~/.m2/repository). */
  readonly mavenRepoLocal?: string;
  /**
   * Where the connector plugin folders come from: Debezium's `plugin` tar.gz (default), or the connector jars and
   * their runtime dependencies minus what Connect provides (`org.apache.kafka:*`, Jackson). Also chosen by
   * CDC_VIEWS_STACK_PLUGIN_SOURCE=connector-jars, and used automatically if the tar.gz cannot be fetched.
   */
  readonly pluginSource?: 'plugin-archive' | 'connector-jars';
}

/** `$CDC_VIEWS_STACK_CACHE`, or ~/.cache/cdc-views/stack-<kafka>-<debezium>. */
export function stackCacheDir(): string {
  return (
    process.env['CDC_VIEWS_STACK_CACHE'] ??
    join(homedir(), '.cache', 'cdc-views', `stack-${KAFKA_VERSION}-${DEBEZIUM_VERSION}`)
  );
}

const MARKER = '.complete';

function stackFiles(dir: string): StackFiles {
  return {
    dir,
    lib: join(dir, 'lib'),
    plugins: join(dir, 'plugins'),
    kafkaVersion: KAFKA_VERSION,
    debeziumVersion: DEBEZIUM_VERSION,
  };
}

function runtimePom(): string {
  const dep = (g: string, a: string, v: string): string =>
    `    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
  const plugin = (c: { artifactId: string; version: string }): string =>
    `          <artifactItem><groupId>io.debezium</groupId><artifactId>${c.artifactId}</artifactId><version>${c.version}</version><type>tar.gz</type><classifier>plugin</classifier></artifactItem>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cdc-views scripts/kafka-stack.ts, used only to resolve jars: do not edit. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cdc-views</groupId><artifactId>kafka-stack</artifactId><version>1</version><packaging>pom</packaging>
  <properties>
    <kafka.version>${KAFKA_VERSION}</kafka.version>
    <log4j.version>${LOG4J_VERSION}</log4j.version>
  </properties>
  <dependencies>
${dep('org.apache.kafka', 'kafka_2.13', '${kafka.version}')}
${dep('org.apache.kafka', 'kafka-tools', '${kafka.version}')}
${dep('org.apache.kafka', 'connect-runtime', '${kafka.version}')}
${dep('org.apache.kafka', 'connect-json', '${kafka.version}')}
    <!-- Kafka 4 logs through slf4j 1.7 to log4j2 but declares no binding: without this it logs nothing. -->
${dep('org.apache.logging.log4j', 'log4j-slf4j-impl', '${log4j.version}')}
${dep('org.apache.logging.log4j', 'log4j-core', '${log4j.version}')}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>${MAVEN_DEPENDENCY_PLUGIN}</version>
    <executions>
      <execution><id>lib</id><configuration>
        <includeScope>runtime</includeScope>
        <outputDirectory>\${project.basedir}/lib</outputDirectory>
      </configuration></execution>
      <execution><id>plugins</id><configuration>
        <outputDirectory>\${project.basedir}/plugins</outputDirectory>
        <artifactItems>
${DEBEZIUM_CONNECTORS.map(plugin).join('\n')}
        </artifactItems>
      </configuration></execution>
    </executions>
  </plugin></plugins></build>
</project>
`;
}

/** A pom whose runtime dependencies are one connector's plugin folder, minus what Connect itself provides. */
function connectorJarsPom(connector: { artifactId: string; version: string }): string {
  const artifact = connector.artifactId;
  const exclusions = [
    'org.apache.kafka',
    'com.fasterxml.jackson.core',
    'com.fasterxml.jackson.datatype',
    'com.fasterxml.jackson.module',
    'com.fasterxml.jackson.dataformat',
    'com.fasterxml.jackson.jakarta.rs',
    'org.slf4j',
  ]
    .map((g) => `        <exclusion><groupId>${g}</groupId><artifactId>*</artifactId></exclusion>`)
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cdc-views scripts/kafka-stack.ts, used only to resolve jars: do not edit. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cdc-views</groupId><artifactId>plugin-${artifact}</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.debezium</groupId><artifactId>${artifact}</artifactId><version>${connector.version}</version>
      <exclusions>
${exclusions}
      </exclusions>
    </dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>${MAVEN_DEPENDENCY_PLUGIN}</version>
  </plugin></plugins></build>
</project>
`;
}

const fetching = new Map<string, Promise<StackFiles>>();

/** The marker is there and every connector this version of the script wants is in place. */
function isComplete(dir: string): boolean {
  return (
    existsSync(join(dir, MARKER)) &&
    DEBEZIUM_CONNECTORS.every(({ artifactId, version }) =>
      existsSync(join(dir, 'plugins', artifactId, `${artifactId}-${version}.jar`)),
    )
  );
}

/**
 * Fetch Kafka, Connect and the Debezium connectors into the cache folder, once. A second call (or a call
 * from another process after the first finished) returns at once: the folder is built under a temporary
 * name and renamed into place with a `.complete` marker only when everything is there.
 */
export function fetchStack(log: Log = defaultLog, options: FetchOptions = {}): Promise<StackFiles> {
  const dir = stackCacheDir();
  if (isComplete(dir)) return Promise.resolve(stackFiles(dir));
  const pending = fetching.get(dir);
  if (pending) return pending;
  const promise = doFetch(dir, log, options).finally(() => fetching.delete(dir));
  fetching.set(dir, promise);
  return promise;
}

async function doFetch(dir: string, log: Log, options: FetchOptions): Promise<StackFiles> {
  const mvn = locate('maven')?.path;
  if (!mvn) {
    throw new MissingBinaryError(
      'mvn',
      `The Kafka and Debezium jars are fetched from Maven Central with Maven 3.8+ (\`npm test\` installs it when it may; by hand: ${fixFor('maven')}).`,
    );
  }
  javaBinary(); // fail early, before downloading, if there is no Java to run them with
  const started = Date.now();
  const parent = join(dir, '..');
  mkdirSync(parent, { recursive: true });
  const staging = mkdtempSync(join(parent, `.${dir.split('/').pop() ?? 'stack'}.partial-`));
  const mavenArgs = [
    '-q',
    '-B',
    ...(options.mavenRepoLocal ? [`-Dmaven.repo.local=${options.mavenRepoLocal}`] : []),
  ];
  const hint =
    'Maven needs to reach Maven Central (or a mirror set in ~/.m2/settings.xml); run the same command by hand without -q to see why it failed.';
  const ticker = setInterval(
    () => log(`…still fetching (${Math.round((Date.now() - started) / 1000)} s)`),
    15_000,
  );
  try {
    const source =
      options.pluginSource ??
      (process.env['CDC_VIEWS_STACK_PLUGIN_SOURCE'] === 'connector-jars'
        ? 'connector-jars'
        : 'plugin-archive');
    log(
      `fetching Kafka ${KAFKA_VERSION} and Debezium (${DEBEZIUM_CONNECTORS.map((c) => `${c.artifactId} ${c.version}`).join(', ')}) with mvn into ${dir} (once; about 150 MB)`,
    );
    writeFileSync(join(staging, 'pom.xml'), runtimePom());
    const goals = ['dependency:copy-dependencies@lib'];
    if (source === 'plugin-archive') goals.push('dependency:unpack@plugins');
    await run(mvn, [...mavenArgs, '-f', join(staging, 'pom.xml'), ...goals], {
      cwd: staging,
      what: `Fetching Kafka ${KAFKA_VERSION} jars`,
      hint,
    }).catch(async (error: unknown) => {
      if (source !== 'plugin-archive') throw error;
      // The Kafka jars may be in place and only the plugin archives missing: fall back to the connector jars.
      log(
        `Debezium's plugin tar.gz could not be fetched (${firstLine(error)}); building the plugin folders from the connector jars`,
      );
      await run(mvn, [...mavenArgs, '-f', join(staging, 'pom.xml'), 'dependency:copy-dependencies@lib'], {
        cwd: staging,
        what: `Fetching Kafka ${KAFKA_VERSION} jars`,
        hint,
      });
      await fetchConnectorJars(mvn, mavenArgs, staging, hint);
    });
    if (source === 'connector-jars') await fetchConnectorJars(mvn, mavenArgs, staging, hint);
    for (const { artifactId, version } of DEBEZIUM_CONNECTORS) {
      const jar = join(staging, 'plugins', artifactId, `${artifactId}-${version}.jar`);
      if (!existsSync(jar)) {
        throw new Error(
          `Fetching Debezium: expected ${jar} to exist after the fetch, but it does not. Hint: run 'mvn -f ${join(dir, 'pom.xml')} dependency:unpack@plugins' by hand (without -q) to see what Maven could not find.`,
        );
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const bytes = dirSize(staging);
    writeFileSync(
      join(staging, MARKER),
      `${JSON.stringify({ kafkaVersion: KAFKA_VERSION, connectors: DEBEZIUM_CONNECTORS, pluginSource: source, seconds, bytes, fetchedAt: new Date().toISOString() }, null, 2)}\n`,
    );
    publish(staging, dir);
    log(`fetched in ${seconds.toFixed(1)} s: ${(bytes / 1e6).toFixed(0)} MB in ${dir}`);
    return stackFiles(dir);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  } finally {
    clearInterval(ticker);
  }
}

async function fetchConnectorJars(
  mvn: string,
  mavenArgs: readonly string[],
  staging: string,
  hint: string,
): Promise<void> {
  for (const connector of DEBEZIUM_CONNECTORS) {
    const pom = join(staging, `pom-${connector.artifactId}.xml`);
    writeFileSync(pom, connectorJarsPom(connector));
    const out = join(staging, 'plugins', connector.artifactId);
    rmSync(out, { recursive: true, force: true });
    await run(
      mvn,
      [
        ...mavenArgs,
        '-f',
        pom,
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${out}`,
      ],
      {
        cwd: staging,
        what: `Fetching ${connector.artifactId} ${connector.version} and its dependencies`,
        hint,
      },
    );
  }
}

/** Move the finished staging folder into place; if another process won the race, keep theirs. */
function publish(staging: string, dir: string): void {
  try {
    renameSync(staging, dir);
  } catch (error) {
    if (isComplete(dir)) {
      rmSync(staging, { recursive: true, force: true });
      return;
    }
    if (!existsSync(dir)) throw error;
    // Unfinished, or fetched by an older version of this script: replace it, but only if it is ours.
    if (!existsSync(join(dir, 'pom.xml')) && readdirSync(dir).length > 0) {
      rmSync(staging, { recursive: true, force: true });
      throw new Error(
        `Fetching the stack: expected ${dir} to be empty or a cdc-views stack cache, but it holds other files. Hint: point CDC_VIEWS_STACK_CACHE at a folder of its own.`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

// ---------------------------------------------------------------------------------------------
// Kafka (KRaft, combined broker + controller)

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

// ---------------------------------------------------------------------------------------------
// Kafka Connect (distributed mode, one worker)

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

// ---------------------------------------------------------------------------------------------
// MariaDB

export interface MariaDbOptions {
  readonly log?: Log;
  /** The server's `server_id` (default 1). Debezium's own `database.server.id` must differ from it. */
  readonly serverId?: number;
  readonly startTimeoutMs?: number;
}

export interface RunningMariaDb {
  /** `mysql://root:<pw>@127.0.0.1:<port>/` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** A user with only what Debezium needs (REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, SHOW DATABASES, LOCK TABLES). */
  readonly replicationUser: { readonly user: string; readonly password: string };
  readonly serverId: number;
  readonly dir: string;
  /** Run SQL as root with the `mariadb` client (batch mode: tab-separated rows, no header). */
  sql(statements: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/local/mysql/bin', '/usr/local/bin'];

/** Start a throwaway MariaDB (binlog on, ROW/FULL) in a temp dir on a free loopback port. */
export async function startMariaDb(options: MariaDbOptions = {}): Promise<RunningMariaDb> {
  const log = options.log ?? defaultLog;
  const hint =
    'Install the MariaDB server and client (Debian/Ubuntu: apt-get install mariadb-server mariadb-client).';
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db'], SBIN);
  const server = findBinary(['mariadbd', 'mysqld'], SBIN);
  const client = findBinary(['mariadb', 'mysql'], SBIN);
  if (!installDb) throw new MissingBinaryError('mariadb-install-db', hint);
  if (!server) throw new MissingBinaryError('mariadbd', hint);
  if (!client) throw new MissingBinaryError('mariadb', hint);
  const began = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-mariadb-'));
  liveDirs.add(dir);
  const data = join(dir, 'data');
  const socket = join(dir, 'mariadb.sock');
  const errorLog = join(dir, 'error.log');
  mkdirSync(join(dir, 'binlog'));
  const port = await freePort();
  const password = randomBytes(9).toString('base64url');
  const replicationUser = { user: 'debezium', password: randomBytes(9).toString('base64url') };
  const serverId = options.serverId ?? 1;
  // mariadbd refuses to run as root unless told to; a throwaway server in our own temp dir may.
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child) await stopChild(child, 'SIGTERM', 20_000);
    untrackDir(dir);
  };
  try {
    await run(
      installDb,
      [
        '--no-defaults',
        `--datadir=${data}`,
        ...asRoot,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
      ],
      {
        what: 'Initialising MariaDB (mariadb-install-db)',
        hint,
      },
    );
    child = spawnServer(
      server,
      [
        '--no-defaults',
        `--datadir=${data}`,
        ...asRoot,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${socket}`,
        `--pid-file=${join(dir, 'mariadb.pid')}`,
        `--log-error=${errorLog}`,
        `--tmpdir=${dir}`,
        '--skip-name-resolve',
        `--log-bin=${join(dir, 'binlog', 'mariadb-bin')}`,
        `--server-id=${serverId}`,
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--innodb-buffer-pool-size=64M',
        '--performance-schema=OFF',
        '--max-connections=100',
      ],
      dir,
      true,
    );
    track(child, dir);
    const output = captureOutput(child);
    const started = child;
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    const rootSql = (sql: string, user: string[]): Promise<string> =>
      run(
        client,
        ['--no-defaults', `--socket=${socket}`, ...user, '--batch', '--skip-column-names', '-e', sql],
        {
          what: 'MariaDB',
          hint: `The server log is ${errorLog}.`,
        },
      );
    for (;;) {
      if (exited(started)) {
        throw new Error(
          `MariaDB: expected mariadbd to keep running, but it exited with ${started.exitCode ?? started.signalCode}.\n${output()}\n${tail(errorLog)}`,
        );
      }
      if (
        existsSync(socket) &&
        (await rootSql('SELECT 1', ['--user=root']).then(
          () => true,
          () => false,
        ))
      )
        break;
      if (Date.now() > deadline)
        throw new Error(
          `MariaDB: expected it to accept connections on ${socket} in time, but it did not.\n${tail(errorLog)}`,
        );
      await sleep(100);
    }
    const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
    await rootSql(
      [
        `ALTER USER 'root'@'localhost' IDENTIFIED BY ${q(password)}`,
        `CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY ${q(password)}`,
        `GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION`,
        `CREATE OR REPLACE USER ${q(replicationUser.user)}@'%' IDENTIFIED BY ${q(replicationUser.password)}`,
        `GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES ON *.* TO ${q(replicationUser.user)}@'%'`,
        'FLUSH PRIVILEGES',
      ].join(';\n'),
      ['--user=root'],
    );
    const sql = (statements: string, database?: string): Promise<string> =>
      run(
        client,
        [
          '--no-defaults',
          '--host=127.0.0.1',
          `--port=${port}`,
          '--user=root',
          `--password=${password}`,
          '--batch',
          '--skip-column-names',
          ...(database ? [`--database=${database}`] : []),
        ],
        { what: 'MariaDB', hint: `The server log is ${errorLog}.`, input: statements },
      );
    log(`MariaDB up on 127.0.0.1:${port} in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return {
      url: `mysql://root:${encodeURIComponent(password)}@127.0.0.1:${port}/`,
      host: '127.0.0.1',
      port,
      user: 'root',
      password,
      replicationUser,
      serverId,
      dir,
      sql,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Connector configs

/** Settings every connector of this project shares: the envelope the decoder expects. */
export const COMMON_CONNECTOR_SETTINGS = {
  'tasks.max': '1',
  'snapshot.mode': 'initial',
  'provide.transaction.metadata': 'true',
  'skipped.operations': 'none',
  'tombstones.on.delete': 'true',
  'topic.creation.default.replication.factor': '1',
  'topic.creation.default.partitions': '1',
  'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'key.converter.schemas.enable': 'true',
  'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'value.converter.schemas.enable': 'true',
  'value.converter.replace.null.with.default': 'false',
} as const satisfies Readonly<Record<string, string>>;

export type ConnectorConfig = Readonly<Record<string, string>>;

export interface PostgresConnectorOptions {
  /** `postgres://user:password@host:port/dbname` */
  readonly databaseUrl: string;
  readonly topicPrefix: string;
  /** Schema-qualified (`public.orders`); an unqualified name means `public.<name>`. */
  readonly tables: readonly string[];
  readonly slotName: string;
  readonly publicationName: string;
  /** default 10000 */
  readonly heartbeatIntervalMs?: number;
  /** Anything else, added last (wins). */
  readonly extra?: ConnectorConfig;
}

function parseDatabaseUrl(databaseUrl: string, protocols: readonly string[], what: string): URL {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error(
      `${what}: expected a URL like ${protocols[0]}//user:password@host:port/db, but got '${databaseUrl}'.`,
    );
  }
  if (!protocols.includes(url.protocol)) {
    throw new Error(
      `${what}: expected a ${protocols.join(' or ')} URL, but got '${url.protocol}' in '${databaseUrl}'.`,
    );
  }
  return url;
}

/** The Debezium PostgreSQL connector config the tests and docker-compose use. */
export function postgresConnectorConfig(options: PostgresConnectorOptions): ConnectorConfig {
  const url = parseDatabaseUrl(options.databaseUrl, ['postgres:', 'postgresql:'], 'postgresConnectorConfig');
  const dbname = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  const password = decodeURIComponent(url.password);
  return {
    'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
    'database.hostname': url.hostname,
    'database.port': url.port || '5432',
    'database.user': decodeURIComponent(url.username) || 'postgres',
    ...(password ? { 'database.password': password } : {}),
    'database.dbname': dbname,
    'topic.prefix': options.topicPrefix,
    'plugin.name': 'pgoutput',
    'slot.name': options.slotName,
    'publication.name': options.publicationName,
    'publication.autocreate.mode': 'filtered',
    'table.include.list': options.tables.map((t) => (t.includes('.') ? t : `public.${t}`)).join(','),
    'heartbeat.interval.ms': String(options.heartbeatIntervalMs ?? 10_000),
    ...COMMON_CONNECTOR_SETTINGS,
    ...options.extra,
  };
}

export interface MariaDbConnectorOptions {
  /** `mysql://user:password@host:port/` (or `mariadb://`): the user needs the replication grants. */
  readonly databaseUrl: string;
  readonly topicPrefix: string;
  readonly databases: readonly string[];
  /** `<database>.<table>` */
  readonly tables: readonly string[];
  /** Debezium's replica id (`database.server.id`): unique among the server's replicas, not the server's own id. */
  readonly serverId: number;
  /** Brokers for the schema history topic, as Connect reaches them. */
  readonly schemaHistoryBrokers: readonly string[];
  /** default `<topicPrefix>.schema-history` */
  readonly schemaHistoryTopic?: string;
  /** default 10000 */
  readonly heartbeatIntervalMs?: number;
  readonly extra?: ConnectorConfig;
}

/**
 * The Debezium config for MariaDB, read with Debezium's MariaDB connector (io.debezium.connector.mariadb.MariaDbConnector,
 * DEBEZIUM_MARIADB_VERSION): the MySQL connector 3.6.1 refuses MariaDB 10.11 (see DEBEZIUM_MARIADB_VERSION).
 * Topics: `<prefix>.<database>.<table>`, `<prefix>.transaction`, schema changes on `<prefix>`.
 */
export function mariadbConnectorConfig(options: MariaDbConnectorOptions): ConnectorConfig {
  const url = parseDatabaseUrl(options.databaseUrl, ['mysql:', 'mariadb:'], 'mariadbConnectorConfig');
  return {
    'connector.class': 'io.debezium.connector.mariadb.MariaDbConnector',
    'database.hostname': url.hostname,
    'database.port': url.port || '3306',
    'database.user': decodeURIComponent(url.username),
    'database.password': decodeURIComponent(url.password),
    'database.server.id': String(options.serverId),
    'topic.prefix': options.topicPrefix,
    'database.include.list': options.databases.join(','),
    'table.include.list': options.tables.join(','),
    'include.schema.changes': 'true',
    'schema.history.internal.kafka.bootstrap.servers': options.schemaHistoryBrokers.join(','),
    'schema.history.internal.kafka.topic':
      options.schemaHistoryTopic ?? `${options.topicPrefix}.schema-history`,
    'heartbeat.interval.ms': String(options.heartbeatIntervalMs ?? 10_000),
    ...COMMON_CONNECTOR_SETTINGS,
    ...options.extra,
  };
}

/**
 * The PostgreSQL connector docker-compose.yml registers: the example shop's tables, with the compose host names.
 * `npx tsx scripts/kafka-stack.ts register-json > deploy/debezium/register-postgres.json` writes it.
 */
export function composePostgresRegistration(): { readonly name: string; readonly config: ConnectorConfig } {
  return {
    name: 'cdc-views-shop-postgres',
    config: postgresConnectorConfig({
      databaseUrl: 'postgres://postgres:postgres@postgres:5432/shop',
      topicPrefix: 'shop',
      tables: ['public.customers', 'public.products', 'public.orders', 'public.order_items'],
      slotName: 'cdc_views_shop',
      publicationName: 'cdc_views_shop',
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(argv: readonly string[]): Promise<void> {
  const command = argv[0];
  if (command === 'fetch') {
    await fetchStack();
    process.stdout.write(`${stackCacheDir()}\n`);
    return;
  }
  if (command === 'register-json') {
    process.stdout.write(`${JSON.stringify(composePostgresRegistration(), null, 2)}\n`);
    return;
  }
  if (command === 'up') {
    const kafka = await startKafka();
    let connect: RunningConnect;
    try {
      connect = await startConnect({ brokers: kafka.brokers });
    } catch (error) {
      await kafka.stop();
      throw error;
    }
    process.stdout.write(`KAFKA_BROKERS=${kafka.brokers.join(',')}\nKAFKA_CONNECT_URL=${connect.url}\n`);
    defaultLog('Ctrl-C stops both and removes their folders');
    await new Promise<void>((resolve) => {
      let stopping = false;
      const shutdown = (): void => {
        if (stopping) return;
        stopping = true;
        defaultLog('stopping…');
        void connect
          .stop()
          .then(() => kafka.stop())
          .then(resolve);
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
    return;
  }
  process.stderr.write(
    `usage: npx tsx scripts/kafka-stack.ts fetch|up|register-json\n` +
      `  fetch          fetch Kafka ${KAFKA_VERSION} + Debezium ${DEBEZIUM_VERSION} (MariaDB connector ${DEBEZIUM_MARIADB_VERSION}) into ${stackCacheDir()}\n` +
      `  up             start Kafka and Kafka Connect on free loopback ports until Ctrl-C\n` +
      `  register-json  print deploy/debezium/register-postgres.json (the connector docker-compose.yml registers)\n`,
  );
  process.exitCode = 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
