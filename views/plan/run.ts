/**
 * One batch through the dataflow: the changes become scan deltas, every operator (in order) asks
 * for the state it needs, gets it loaded, and steps; the writes of all of them (the store's
 * takeWrites()) go into one atomic write step (store/write-step.ts).
 *
 *   changes ─▶ scans ─▶ for each operator: needs → load (cache, else one round trip) → step
 *                                              ─▶ store.takeWrites() → the write step
 *
 * A change a view cannot apply (PlanError) stops that view — and the views reading it — with the
 * reason; the change goes to the dead-letter stream. The other views go on.
 */
import type { Change } from '../../ingest/change.ts';
import { PlanError } from '../errors.ts';
import { Join, type FanoutJob } from '../operators/join.ts';
import { ScanMemo } from '../operators/scan.ts';
import type { DeltaBatch, Operator } from '../operators/types.ts';
import { EMPTY } from '../operators/types.ts';
import type { StateStore } from '../store/state-store.ts';
import type { Dataflow, ViewCosts } from './graph.ts';

export interface RunOptions {
  /** Views not maintained (stopped). */
  readonly skip: ReadonlySet<string>;
  /** Views whose changes are not logged (building, or inside a transaction applied in parts). */
  readonly quiet: ReadonlySet<string>;
  /** Views whose history starts over with this step (built, or after a transaction in parts). */
  readonly resets?: ReadonlyMap<string, string>;
  /** Views whose scans take no changes this step (a backfill already holds them); their other operators run. */
  readonly skipScans?: ReadonlySet<string>;
  /** Outputs given instead of computed (a backfill seeds a view from the rows of a live view it reads). */
  readonly seed?: ReadonlyMap<Operator, DeltaBatch>;
}

export interface RunResult {
  /** Views a change could not be applied to (they stop), with the change and the reason. */
  readonly rejected: { readonly view: string; readonly reason: string; readonly change: Change | null }[];
  /** Views whose rows changed. */
  readonly touched: string[];
  readonly changelogEntries: number;
  /** Each operator's output this step (a second run over other views may read a view's output). */
  readonly outputs: ReadonlyMap<Operator, DeltaBatch>;
  /**
   * Join fan-outs deferred to after this step (plan/fanout.ts), with the views they will change:
   * the join's view and the views reading it. Those views are quiet this step.
   */
  readonly deferred: { readonly job: FanoutJob; readonly views: readonly string[] }[];
}

const MAX_READ_ROUNDS = 16;

export async function runBatch(
  flow: Dataflow,
  changes: readonly Change[],
  store: StateStore,
  options: RunOptions,
): Promise<RunResult> {
  const skip = new Set(options.skip);
  const rejected: RunResult['rejected'] = [];
  const stop = (view: string, reason: string, change: Change | null): void => {
    if (skip.has(view)) return;
    rejected.push({ view, reason, change });
    skip.add(view);
    for (const dependent of flow.dependents.get(view) ?? []) skip.add(dependent);
  };

  const outputs = new Map<Operator, DeltaBatch>(options.seed ?? []);
  const memo = new ScanMemo();
  for (const [, scans] of flow.scans) {
    for (const scan of scans) {
      const view = flow.owner.get(scan)!;
      if (skip.has(view) || options.skipScans?.has(view)) continue;
      try {
        const started = performance.now();
        outputs.set(scan, scan.fromChanges(changes, memo));
        addCost(flow.costs, view, performance.now() - started, 0);
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        stop(view, error.message, (error.change as Change | null) ?? null);
      }
    }
  }

  const touched: string[] = [];
  let changelogEntries = 0;
  const deferred: RunResult['deferred'] = [];
  // Views a deferred fan-out will change: they log nothing now (a reset entry follows the last chunk).
  const fanout = new Set<string>();
  // A large batch yields to the event loop between operators, so GraphQL reads served by the same
  // process are not held up for the whole plan.
  const yielding = changes.length > 500;
  for (const op of flow.order) {
    const view = flow.owner.get(op)!;
    if (skip.has(view) || options.seed?.has(op)) continue;
    const inputs = op.inputs.map((i) => outputs.get(i) ?? EMPTY);
    if (yielding) await new Promise((r) => setImmediate(r));
    const output = flow.outputs.get(view) === op ? flow.outputs.get(view)! : null;
    const reset = output ? options.resets?.get(view) : undefined;
    if (inputs.every((b) => b === EMPTY) && reset === undefined) continue;
    if (output) output.quiet = options.quiet.has(view) || fanout.has(view);
    const writesBefore = store.plannedWrites;
    let ms = 0;
    try {
      for (let round = 0; ; round++) {
        const started = performance.now();
        const reads = op.needs?.(inputs, store) ?? [];
        ms += performance.now() - started;
        if (reads.length === 0) break;
        if (round >= MAX_READ_ROUNDS)
          throw new Error(
            `operator ${op.id} still needs state after ${MAX_READ_ROUNDS} reads: ${JSON.stringify(reads.slice(0, 3))}`,
          );
        await store.load(reads);
      }
      const started = performance.now();
      const result = op.step(inputs, store);
      ms += performance.now() - started;
      addCost(flow.costs, view, ms, store.plannedWrites - writesBefore);
      outputs.set(op, result);
      if (op instanceof Join) {
        const jobs = op.takeDeferred();
        const views = [view, ...(flow.dependents.get(view) ?? [])].filter((v) => !skip.has(v));
        for (const job of jobs) deferred.push({ job, views });
        if (jobs.length > 0) for (const v of views) fanout.add(v);
      }
      if (output) {
        if (reset !== undefined) output.reset(store, reset);
        if (result.clear || result.deltas.length > 0) touched.push(view);
        changelogEntries += output.logged;
      }
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      stop(view, error.message, null);
    }
  }
  return { rejected, touched, changelogEntries, outputs, deferred };
}

function addCost(costs: ViewCosts | undefined, view: string, ms: number, writes: number): void {
  if (!costs) return;
  const cost = costs.get(view);
  if (cost) {
    cost.ms += ms;
    cost.writes += writes;
  } else costs.set(view, { ms, writes });
}

/** Start the history of these views over (a reset entry each), outside a run. */
export async function resetViews(
  flow: Dataflow,
  store: StateStore,
  views: readonly string[],
  why: string,
): Promise<void> {
  for (const view of views) {
    const output = flow.outputs.get(view);
    if (!output) continue;
    await store.load(output.needs([EMPTY], store));
    output.reset(store, why);
  }
}
