/**
 * The same shop views, fed by Debezium through Kafka instead of the embedded PostgreSQL source:
 * only the source line changes. Used by docker-compose.yml; see README "Debezium and Kafka".
 */
import { defineConfig, source } from 'cdc-views';
import shop from './views.config.ts';

export default defineConfig({
  ...shop,
  source: source.kafka({
    brokers: process.env['KAFKA_BROKERS']?.split(','),
    topicPrefix: process.env['DEBEZIUM_TOPIC_PREFIX'] ?? 'shop',
    transactions: true,
  }),
});
