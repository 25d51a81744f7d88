/**
 * Fetching the jars with Maven (fetchStack), once per version, into a cache folder:
 *
 *   fetchStack()              mvn -q -B dependency:copy-dependencies@lib dependency:unpack@plugins
 *     └─ ~/.cache/cdc-views/stack-4.3.1-3.6.1.Final/        (or $CDC_VIEWS_STACK_CACHE; `.complete` marks it done)
 *          lib/*.jar                     Kafka broker, tools, Connect runtime, JsonConverter, log4j2 + slf4j binding
 *          plugins/debezium-connector-{postgres,mysql}/ (3.6.1), plugins/debezium-connector-mariadb/ (3.5.0)
 *                                        Debezium's `plugin` tar.gz, unpacked; or, if that is not served, each connector
 *                                        jar + its runtime dependencies minus what Connect provides (Kafka, Jackson)
 *
 * The folder is built under a temporary name and renamed into place when complete, so concurrent fetches (two
 * calls, or two processes) end with one folder.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fixFor, locate } from '../provision.ts';
import { MissingBinaryError } from '../servers.ts';
import { defaultLog, dirSize, firstLine, javaBinary, type Log, properties, run } from './processes.ts';
import {
  DEBEZIUM_CONNECTORS,
  DEBEZIUM_VERSION,
  KAFKA_VERSION,
  LOG4J_VERSION,
  MAVEN_DEPENDENCY_PLUGIN,
} from './versions.ts';

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
