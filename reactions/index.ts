/**
 * Starts a runner per declared reaction, each on a Redis connection of its own, sharing its
 * consumer group with every other process that runs it.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Config } from '../views/config.ts';
import { reactionViewName } from '../views/reactions.ts';
export { reactedViews, ReactionGroups, reactionBacklogs, type ReactionBacklog } from './groups.ts';
import type { Registry } from '../views/registry.ts';
import { connectRedis } from '../views/store/redis.ts';
import { ReactionRunner, type ReactionOutcome, type ReactionRunnerOptions } from './runner.ts';

export interface Reactions {
  readonly names: readonly string[];
  stop(): Promise<void>;
}

export async function startReactions(options: {
  readonly config: Config;
  readonly registry: Registry;
  readonly prefix: string;
  readonly redisUrl: string;
  readonly log: ReactionRunnerOptions['log'];
  readonly onOutcome: (reaction: string, outcome: ReactionOutcome) => void;
}): Promise<Reactions> {
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const runners: ReactionRunner[] = [];
  for (const [name, reaction] of Object.entries(options.config.reactions ?? {})) {
    const view = options.registry.byName.get(reactionViewName(reaction, options.config.views)!)!;
    const redis = await connectRedis(options.redisUrl, (error) => options.log('warn', 'reaction redis connection error', { reaction: name, err: error }));
    const runner = new ReactionRunner({
      name,
      reaction,
      view,
      prefix: options.prefix,
      redis,
      consumer,
      log: options.log,
      onOutcome: options.onOutcome,
    });
    await runner.start();
    runners.push(runner);
  }
  if (runners.length > 0) options.log('info', 'reactions running', { reactions: Object.keys(options.config.reactions ?? {}), consumer });
  return {
    names: Object.keys(options.config.reactions ?? {}),
    async stop() {
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}
