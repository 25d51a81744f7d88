/**
 * Turn a BatchPlan into one call of the apply script (apply-script.ts) and run it.
 */
import type { SourcePosition } from '../../ingest/change.ts';
import { RedisApplyError } from '../errors.ts';
import type { AccumulatorDelta, BatchPlan } from '../plan/plan-batch.ts';
import type { Accumulator } from '../registry.ts';
import type { ImageWrites } from '../plan/row-images.ts';
import { APPLY_SCRIPT } from './apply-script.ts';
import { checkpointKey } from './keys.ts';
import { LuaScript, type RedisClient } from './redis.ts';

const applyScript = new LuaScript(APPLY_SCRIPT);

export interface DeadLetter {
  readonly reason: string;
  /** The offending input, serialized (JSON), with its position. */
  readonly payload: string;
}

export interface ApplyOptions {
  /** Approximate cap of each view's changelog (entries). */
  readonly changelogMaxLength: number;
}

/** What the write step checks and marks besides the plan (see apply-script.ts). */
export interface StepControl {
  /** The writer's fencing token. */
  readonly lease: string;
  /** The step the writer last wrote (0 right after a rebuild). */
  readonly step: number;
  /** Unique per step (kept across retries of it): a retry of a step that landed is recognised. */
  readonly stepId: string;
  /** Part of a transaction too large for one step: its id, index, and whether it is the last part. */
  readonly part: { readonly txn: string; readonly index: number; readonly final: boolean } | null;
  /** Views whose changes are not logged (building). */
  readonly quiet: readonly string[];
  /** Views touched by a part (not logged row by row; readers wait until the last part). */
  readonly busy: readonly string[];
  /** Views going live with this step, with their new status (JSON). */
  readonly live: readonly { readonly view: string; readonly status: string }[];
}

export type ApplyResult =
  | { readonly status: 'applied'; readonly changelogEntries: number; readonly step: number }
  /** Another writer holds the lease. */
  | { readonly status: 'fenced'; readonly holder: string }
  /** Redis does not hold the step this writer last wrote. */
  | { readonly status: 'lost'; readonly storedStep: string }
  /** Already applied: a replay (its position is stored), or an earlier attempt of this step (then `step` is where it left the counter). */
  | { readonly status: 'duplicate'; readonly step?: number }
  /** A row image changed since it was read (another writer): re-read and re-plan. */
  | { readonly status: 'conflict'; readonly table: string };

/** ARGV for the apply script; exported for tests of the encoding. */
export function encodeApplyArgs(
  prefix: string,
  control: StepControl,
  plan: BatchPlan,
  position: SourcePosition,
  deadLetters: readonly DeadLetter[],
  options: ApplyOptions,
  images: ImageWrites | null = null,
): string[] {
  const { part } = control;
  const args = [prefix, String(options.changelogMaxLength), control.lease, String(control.step), control.stepId, part ? `${part.txn}:${part.index}` : '', part?.final ? '1' : '0'];
  args.push(String(position.length));
  for (const { stream, token } of position) args.push(stream, token);
  args.push(String(control.quiet.length), ...control.quiet, String(control.busy.length), ...control.busy, String(control.live.length));
  for (const { view, status } of control.live) args.push(view, status);
  args.push(String(images?.clear.size ?? 0), ...(images?.clear ?? []));
  const imageArgs: string[] = [];
  for (const [table, keys] of images?.set ?? []) {
    for (const [key, { expected, value }] of keys) imageArgs.push(table, key, expected === null ? '-' : expected === '' ? '0' : `=${expected}`, value);
  }
  args.push(String(imageArgs.length / 4), ...imageArgs);
  for (const viewPlan of plan.views) {
    const view = viewPlan.view.name;
    if (viewPlan.clear) args.push('X', view, viewPlan.kind === 'aggregate' ? '1' : '0');
    if (viewPlan.kind === 'rows') {
      for (const [key, op] of viewPlan.ops) {
        if (op.kind === 'upsert') args.push('U', view, key, op.json);
        else args.push('D', view, key);
      }
    } else {
      for (const [key, group] of viewPlan.groups) {
        args.push('A', view, key, group.groupJson, String(group.rows), String(group.accumulators.length));
        group.accumulators.forEach((delta, i) => pushAccumulator(args, delta, viewPlan.view.accumulators[i]!));
      }
    }
  }
  for (const letter of deadLetters) args.push('Q', letter.reason, letter.payload);
  return args;
}

function pushAccumulator(args: string[], delta: AccumulatorDelta, accumulator: Accumulator): void {
  switch (delta.kind) {
    case 'count':
      args.push('c', String(delta.count));
      break;
    case 'sum': {
      const scales = [...delta.scales].filter(([, n]) => n !== 0);
      args.push('s', delta.unscaled.toString(), String(delta.scale), String(delta.count), String(scales.length));
      for (const [scale, n] of scales) args.push(String(scale), String(n));
      break;
    }
    case 'floatSum':
      args.push('f', String(delta.sum), String(delta.count));
      break;
    case 'candidates': {
      const entries = [...delta.members].filter(([, n]) => n !== 0);
      const wants = accumulator.kind === 'candidates' ? accumulator : { min: true, max: true };
      args.push('x', wants.min ? '1' : '0', wants.max ? '1' : '0', String(entries.length));
      for (const [member, n] of entries) args.push(member, String(n));
      break;
    }
  }
}

/** Apply a planned batch and its position in one atomic step. */
export async function applyBatch(
  redis: RedisClient,
  prefix: string,
  control: StepControl,
  plan: BatchPlan,
  position: SourcePosition,
  deadLetters: readonly DeadLetter[],
  options: ApplyOptions,
  images: ImageWrites | null = null,
): Promise<ApplyResult> {
  const args = encodeApplyArgs(prefix, control, plan, position, deadLetters, options, images);
  let reply: [string, string | number, string?];
  try {
    reply = await applyScript.run(redis, [checkpointKey(prefix)], args);
  } catch (error) {
    throw new RedisApplyError(`Applying a batch of ${plan.views.length} view(s) to Redis failed: ${String(error)}`, {
      cause: error,
    });
  }
  if (reply[0] === 'dup') return reply[1] === 'retried' ? { status: 'duplicate', step: Number(reply[2]) } : { status: 'duplicate' };
  if (reply[0] === 'conflict') return { status: 'conflict', table: String(reply[1]) };
  if (reply[0] === 'fenced') return { status: 'fenced', holder: String(reply[1]) };
  if (reply[0] === 'lost') return { status: 'lost', storedStep: String(reply[1]) };
  return { status: 'applied', changelogEntries: Number(reply[1]), step: Number(reply[2]) };
}
