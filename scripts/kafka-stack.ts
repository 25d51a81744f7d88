/**
 * The CLI of the Kafka + Kafka Connect + Debezium stack (scripts/kafka-stack/: code imports its index.ts):
 *
 *   npx tsx scripts/kafka-stack.ts fetch          — fetch the jars only
 *   npx tsx scripts/kafka-stack.ts up             — start Kafka + Connect, print their addresses; Ctrl-C stops them
 *   npx tsx scripts/kafka-stack.ts register-json  — print deploy/debezium/register-postgres.json
 */
import { pathToFileURL } from 'node:url';
import {
  composePostgresRegistration,
  DEBEZIUM_MARIADB_VERSION,
  DEBEZIUM_VERSION,
  fetchStack,
  KAFKA_VERSION,
  stackCacheDir,
  startConnect,
  startKafka,
  type RunningConnect,
} from './kafka-stack/index.ts';
import { defaultLog } from './kafka-stack/processes.ts';

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
