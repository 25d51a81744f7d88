/**
 * How a writer starts (or restarts) on a deployment: resume from the checkpoint Redis holds, or
 * rebuild every view from a fresh snapshot — and why. Rebuilding is the answer whenever the views
 * in Redis cannot be trusted to continue from where the source would resume:
 *
 *   no checkpoint                    first start · the initial snapshot did not finish ·
 *                                    Redis lost the keyspace under a running writer
 *   other definitions                the config changed a view or added one, or the layout changed
 *                                    (views only removed: the others resume, the removed are deleted)
 *   a rebuild was asked for          a schema change rewrote a table outside the stream
 *   stopped views (at process start) a schema change stopped them; the config may be fixed now
 *   the source cannot resume there   the slot is gone · the source acknowledged more than Redis
 *                                    holds (Redis lost acknowledged steps) · retention deleted it
 *
 * Redis holding an *older* state than this writer wrote is logged loudly either way: when the
 * source can still resend from the older checkpoint (Kafka; PostgreSQL when only unacknowledged
 * steps were lost) resuming is exact, otherwise the views are rebuilt.
 */
import type { ChangeSource, SourcePosition } from '../ingest/change.ts';
import type { StoredState } from './store/state.ts';

export type StartDecision =
  | {
      readonly action: 'resume';
      readonly checkpoint: SourcePosition;
      readonly step: number;
      readonly warning: string | null;
      /** Views the config no longer declares: their state is deleted, the others resume untouched. */
      readonly removed: readonly string[];
    }
  | { readonly action: 'rebuild'; readonly reason: string; readonly lost: boolean };

export interface StartContext {
  readonly layout: string;
  readonly fingerprints: string;
  /** The last step this process wrote, when it has written any. */
  readonly lastStep: number | null;
  /** True on the first start of this process (stopped views are rebuilt then, not on a pipeline restart). */
  readonly processStart: boolean;
}

export async function decideStart(stored: StoredState, context: StartContext, source: Pick<ChangeSource, 'resumeProblem'>): Promise<StartDecision> {
  if (stored.step === null) {
    if (context.lastStep !== null) {
      return {
        action: 'rebuild',
        reason: `Redis lost this deployment's state (its keyspace is empty, but this writer had written step ${context.lastStep}): restarted without persistence, or flushed`,
        lost: true,
      };
    }
    return { action: 'rebuild', reason: stored.layout === null ? 'first start' : 'the initial snapshot did not finish', lost: false };
  }
  if (stored.checkpoint === null) return { action: 'rebuild', reason: 'the initial snapshot did not finish', lost: false };
  const diff = fingerprintDiff(stored.fingerprints, context.fingerprints);
  if (stored.layout !== context.layout) return { action: 'rebuild', reason: 'the state layout changed (a new version of cdc-views)', lost: false };
  if (diff.added.length > 0 || diff.changed.length > 0) return { action: 'rebuild', reason: `the view definitions changed: ${describeDiff(diff)}`, lost: false };
  if (stored.rebuild !== null) return { action: 'rebuild', reason: stored.rebuild, lost: false };
  const stopped = [...stored.views].filter(([, s]) => s.state === 'stopped');
  if (context.processStart && stopped.length > 0) {
    return {
      action: 'rebuild',
      reason: `view${stopped.length > 1 ? 's' : ''} ${stopped.map(([v]) => v).join(', ')} had stopped (${stopped[0]![1].reason ?? 'no reason recorded'}); the service starts again, so they are rebuilt`,
      lost: false,
    };
  }
  const behind = context.lastStep !== null && stored.step < context.lastStep;
  const problem = source.resumeProblem ? await source.resumeProblem(stored.checkpoint) : null;
  if (problem !== null) {
    return {
      action: 'rebuild',
      reason: behind ? `Redis went back from step ${context.lastStep} to ${stored.step}, and ${problem}` : problem,
      lost: behind || /acknowledged/.test(problem),
    };
  }
  return {
    action: 'resume',
    checkpoint: stored.checkpoint,
    step: stored.step,
    warning: behind
      ? `Redis holds an older state than this writer wrote (step ${stored.step} < ${context.lastStep}: restored from an older dump, or failed over to a replica that missed writes); the source still has everything after its checkpoint, so it resends it and the views catch up exactly`
      : null,
    removed: diff.removed,
  };
}

export interface FingerprintDiff {
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  readonly unchanged: readonly string[];
}

/** Which views are new, changed, removed or unchanged between two `{ view: fingerprint }` JSON maps. */
export function fingerprintDiff(stored: string | null, current: string): FingerprintDiff {
  const before = (stored ? JSON.parse(stored) : {}) as Record<string, string>;
  const now = JSON.parse(current) as Record<string, string>;
  const names = Object.keys(now);
  return {
    added: names.filter((v) => !(v in before)),
    changed: names.filter((v) => v in before && before[v] !== now[v]),
    removed: Object.keys(before).filter((v) => !(v in now)),
    unchanged: names.filter((v) => before[v] === now[v]),
  };
}

export function describeDiff(d: FingerprintDiff): string {
  const part = (label: string, views: readonly string[]): string[] => (views.length > 0 ? [`${label} ${views.join(', ')}`] : []);
  return [...part('new', d.added), ...part('changed', d.changed), ...part('removed', d.removed), `${d.unchanged.length} unchanged`].join('; ');
}
