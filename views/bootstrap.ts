/**
 * How a writer starts (or restarts) on a deployment: resume from the checkpoint Redis holds, or
 * rebuild every view from a fresh snapshot — and why. Rebuilding is the answer whenever the views
 * in Redis cannot be trusted to continue from where the source would resume:
 *
 *   no checkpoint                    first start · the initial snapshot did not finish ·
 *                                    Redis lost the keyspace under a running writer
 *   the layout changed               a new version of cdc-views
 *   a rebuild was asked for          a schema change rewrote a table outside the stream
 *   the source cannot resume there   the slot is gone · the source acknowledged more than Redis
 *                                    holds (Redis lost acknowledged steps) · retention deleted it
 *
 * Some views only — new or changed definitions, views that had stopped (at process start), views
 * an operator asked to rebuild (`cdc-views rebuild`), views a backfill had not finished — are
 * *backfilled* while every other view resumes and stays live (engine.ts, backfill.ts), with the
 * views reading them; removed views are deleted. A source that cannot backfill rebuilds
 * every view instead.
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
      /** Views to build again while the others stay live, each with why. */
      readonly backfill: ReadonlyMap<string, string>;
      /** Which views the config added, changed and removed, in words; null when none. */
      readonly definitions: string | null;
    }
  | { readonly action: 'rebuild'; readonly reason: string; readonly lost: boolean };

export interface StartContext {
  readonly layout: string;
  readonly fingerprints: string;
  /** The last step this process wrote, when it has written any. */
  readonly lastStep: number | null;
  /** True on the first start of this process (stopped views are rebuilt then, not on a pipeline restart). */
  readonly processStart: boolean;
  /** Whether the source can backfill some views beside the stream (else they rebuild every view). */
  readonly canBackfill: boolean;
  /** The views reading each view, transitively: they are built again with it. */
  readonly dependents: ReadonlyMap<string, ReadonlySet<string>>;
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
  if (stored.layout !== context.layout) return { action: 'rebuild', reason: 'the state layout changed (a new version of cdc-views)', lost: false };
  if (stored.rebuild !== null) return { action: 'rebuild', reason: stored.rebuild, lost: false };
  const diff = fingerprintDiff(stored.fingerprints, context.fingerprints);
  const backfill = new Map<string, string>();
  for (const view of diff.added) backfill.set(view, 'a new view');
  for (const view of diff.changed) backfill.set(view, 'its definition changed');
  for (const [view, reason] of stored.requests) if (!diff.removed.includes(view)) backfill.set(view, reason);
  for (const [view, status] of stored.views) {
    if (diff.removed.includes(view) || backfill.has(view)) continue;
    if (status.state === 'building') backfill.set(view, `its backfill had not finished (${status.reason ?? 'no reason recorded'})`);
    else if (status.state === 'stopped' && context.processStart) backfill.set(view, `it had stopped (${status.reason ?? 'no reason recorded'}); the service starts again`);
  }
  for (const view of [...backfill.keys()]) {
    for (const dependent of context.dependents.get(view) ?? []) if (!backfill.has(dependent)) backfill.set(dependent, `it reads ${view}, which is built again`);
  }
  if (backfill.size > 0 && !context.canBackfill) {
    return { action: 'rebuild', reason: `${[...backfill].map(([v, why]) => `${v}: ${why}`).join('; ')} (${describeDiff(diff)}); this source rebuilds every view`, lost: false };
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
    backfill,
    definitions: diff.added.length + diff.changed.length + diff.removed.length > 0 ? `the view definitions changed: ${describeDiff(diff)}` : null,
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
