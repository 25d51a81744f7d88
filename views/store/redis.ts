/**
 * The Redis connection the views layer uses, and Lua scripts run by SHA with a fallback to EVAL
 * (after a Redis restart or failover the script cache is empty).
 *
 * Everything goes through `sendCommand` with string arguments: the keys hold control bytes
 * (\x00, \x01) that must reach Redis untouched, and one code path keeps the types simple.
 */
import { createHash } from 'node:crypto';
import { createClient } from 'redis';

export type RedisClient = ReturnType<typeof createClient>;

/**
 * Connect to Redis, with an error listener so a dropped connection reconnects instead of crashing.
 * Commands sent while disconnected fail at once instead of queueing: a write step is retried by
 * the engine (and says so in /ready), a read answers with an error rather than hanging.
 */
export async function connectRedis(url: string, onError?: (error: Error) => void): Promise<RedisClient> {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, 2000) },
  });
  client.on('error', (error: Error) => onError?.(error));
  await client.connect();
  return client;
}

export class LuaScript {
  readonly source: string;
  readonly sha: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run<T>(redis: RedisClient, keys: readonly string[], args: readonly string[]): Promise<T> {
    try {
      return await redis.sendCommand<T>(['EVALSHA', this.sha, String(keys.length), ...keys, ...args]);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.sendCommand<T>(['EVAL', this.source, String(keys.length), ...keys, ...args]);
    }
  }
}

/** Delete every key matching a pattern (SCAN + UNLINK: never blocks Redis on a big keyspace). */
export async function deleteByPattern(redis: RedisClient, pattern: string): Promise<number> {
  let deleted = 0;
  for await (const keys of scanKeys(redis, pattern))
    deleted += await redis.sendCommand<number>(['UNLINK', ...keys]);
  return deleted;
}

/**
 * The keys matching a pattern, a SCAN page at a time (each page non-empty): SCAN never blocks Redis
 * on a big keyspace, but may return a key twice.
 */
export async function* scanKeys(redis: RedisClient, pattern: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.sendCommand<[string, string[]]>([
      'SCAN',
      cursor,
      'MATCH',
      pattern,
      'COUNT',
      '1000',
    ]);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}
