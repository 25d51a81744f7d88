/**
 * Sources by config: the one place that turns `source.postgres(…)` / `source.kafka(…)` into a live
 * ChangeSource.
 */
import type { ChangeSource } from './change.ts';
import { ServiceError } from './errors.ts';
import { KafkaSource } from './kafka/kafka-source.ts';
import { PostgresSource, type SnapshotProgress } from './pg/postgres-source.ts';
import type { SourceOptions, TableRequirement } from './source-options.ts';

export interface SourceHooks {
  readonly onSnapshotProgress?: (progress: SnapshotProgress) => void;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

export function createSource(
  options: SourceOptions,
  tables: readonly TableRequirement[],
  hooks: SourceHooks = {},
  deployment = 'default',
): ChangeSource {
  switch (options.kind) {
    case 'postgres': {
      const url = options.url ?? process.env['DATABASE_URL'];
      if (!url) {
        throw new ServiceError('CONFIG_INVALID', 'source.postgres needs a connection URL: set DATABASE_URL or pass { url } in the config');
      }
      return new PostgresSource({
        url,
        slot: options.slot ?? 'cdc_views',
        publication: options.publication ?? 'cdc_views',
        tables,
        ...(options.snapshotChunkRows === undefined ? {} : { snapshotChunkRows: options.snapshotChunkRows }),
        ...(options.transactionPartChanges === undefined ? {} : { partChanges: options.transactionPartChanges }),
        ...(hooks.onSnapshotProgress ? { onProgress: hooks.onSnapshotProgress } : {}),
        ...(hooks.log ? { log: hooks.log } : {}),
      });
    }
    case 'kafka': {
      const brokers = options.brokers ?? process.env['KAFKA_BROKERS']?.split(',').map((b) => b.trim()).filter(Boolean);
      if (!brokers?.length) {
        throw new ServiceError('CONFIG_INVALID', 'source.kafka needs brokers: set KAFKA_BROKERS (host:port,…) or pass { brokers } in the config');
      }
      return new KafkaSource({
        brokers,
        topicPrefix: options.topicPrefix,
        groupId: options.groupId ?? `cdc-views-${deployment}`,
        transactions: options.transactions ?? true,
        tables,
        ...(options.transactionPartChanges === undefined ? {} : { partChanges: options.transactionPartChanges }),
        ...(hooks.log ? { log: hooks.log } : {}),
      });
    }
  }
}

export type { SnapshotProgress } from './pg/postgres-source.ts';
