/**
 * Checks of the `redis` section of a config: every problem is an Issue (the config fails at start
 * listing them all, like the views' own). Numbers the write step carries (a changelog's length) are
 * bounded by what it can pack (an unsigned 32-bit integer).
 */
import type { RedisOptions } from './config.ts';
import type { Issue } from './errors.ts';
import { DURABILITY_MODES } from './store/durability.ts';

const MODES: readonly string[] = ['auto', ...DURABILITY_MODES];

export function validateRedisOptions(redis: RedisOptions | undefined, issues: Issue[]): void {
  if (!redis) return;
  integer(redis.leaseTtlMs, 'redis.leaseTtlMs', 100, 3_600_000, issues);
  integer(redis.changelogMaxLength, 'redis.changelogMaxLength', 1, 0xffffffff, issues);
  integer(redis.fanoutChunk, 'redis.fanoutChunk', 1, 1_000_000, issues);
  const durability = redis.durability;
  if (durability === undefined) return;
  if (durability.mode !== undefined && !MODES.includes(durability.mode)) {
    issues.push({
      path: 'redis.durability.mode',
      message: `Expected one of ${MODES.join(', ')}, but found ${JSON.stringify(durability.mode)}`,
    });
  }
  integer(durability.replicas, 'redis.durability.replicas', 1, 100, issues);
  integer(durability.timeoutMs, 'redis.durability.timeoutMs', 1, 3_600_000, issues);
  if (durability.require !== undefined && typeof durability.require !== 'boolean') {
    issues.push({
      path: 'redis.durability.require',
      message: `Expected true or false, but found ${JSON.stringify(durability.require)}`,
    });
  }
}

function integer(value: unknown, path: string, min: number, max: number, issues: Issue[]): void {
  if (value === undefined) return;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return;
  issues.push({
    path,
    message: `Expected an integer from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}, but found ${JSON.stringify(value)}`,
  });
}
