/**
 * How a writer starts on a deployment (bootstrap.ts) and how a backfill decides when its views may
 * go live (backfill.ts): pure decisions, no servers.
 */
import { describe, expect, it } from 'vitest';
import type { ChangeBatch } from '../../../ingest/change.ts';
import {
  Backfill,
  changePositions,
  coveredBy,
  decodeWindow,
  describeBackfill,
  encodeWindow,
  reached,
} from '../../../views/backfill.ts';
import { inNamespace, mergeImageWrites } from '../../../views/plan/row-images.ts';
import { decideStart, type StartContext } from '../../../views/bootstrap.ts';
import { statusOf, type StoredState, type ViewStatus } from '../../../views/store/state.ts';

const live: ViewStatus = { state: 'live', since: 1 };
const checkpoint = [{ stream: 'pg:s', token: '00000000000000000100' }];

function stored(overrides: Partial<StoredState> = {}): StoredState {
  return {
    checkpoint,
    step: 7,
    epoch: 'e',
    pending: null,
    layout: '1',
    fingerprints: JSON.stringify({ a: 'fa', b: 'fb', c: 'fc' }),
    rebuild: null,
    views: new Map([
      ['a', live],
      ['b', live],
      ['c', live],
    ]),
    busy: new Set(),
    requests: new Map(),
    window: null,
    served: new Map(),
    retired: [],
    next: new Map(),
    ...overrides,
  };
}

function context(overrides: Partial<StartContext> = {}): StartContext {
  return {
    layout: '1',
    fingerprints: JSON.stringify({ a: 'fa', b: 'fb', c: 'fc' }),
    lastStep: null,
    processStart: true,
    canBackfill: true,
    // c reads b.
    dependents: new Map([
      ['a', new Set<string>()],
      ['b', new Set(['c'])],
      ['c', new Set<string>()],
    ]),
    ...overrides,
  };
}

const source = { resumeProblem: async () => null };

describe('decideStart', () => {
  it('resumes untouched when nothing changed', async () => {
    const decision = await decideStart(stored(), context(), source);
    expect(decision).toMatchObject({ action: 'resume', removed: [], checkpoint });
    expect(decision.action === 'resume' && decision.backfill.size).toBe(0);
  });

  it('backfills new and changed views, and the views reading them; deletes removed ones', async () => {
    const decision = await decideStart(
      stored({ fingerprints: JSON.stringify({ a: 'fa', b: 'old', gone: 'fg' }) }),
      context({ fingerprints: JSON.stringify({ a: 'fa', b: 'fb', c: 'fc' }) }),
      source,
    );
    expect(decision.action).toBe('resume');
    if (decision.action !== 'resume') return;
    expect(decision.removed).toEqual(['gone']);
    expect(Object.fromEntries(decision.backfill)).toEqual({ c: 'a new view', b: 'its definition changed' });
    expect(decision.definitions).toBe(
      'the view definitions changed: new c; changed b; removed gone; 1 unchanged',
    );
  });

  it('backfills what an operator asked for, views whose backfill did not finish, and stopped views at process start', async () => {
    const decision = await decideStart(
      stored({
        requests: new Map([['b', 'asked']]),
        views: new Map<string, ViewStatus>([
          ['a', { state: 'stopped', reason: 'a column changed type', since: 1 }],
          ['b', live],
          ['c', live],
        ]),
      }),
      context(),
      source,
    );
    expect(decision.action === 'resume' && Object.fromEntries(decision.backfill)).toEqual({
      b: 'asked',
      a: 'it had stopped (a column changed type); the service starts again',
      c: 'it reads b, which is built again',
    });
    const building = await decideStart(
      stored({
        views: new Map<string, ViewStatus>([
          ['a', { state: 'building', reason: 'backfilling: a new view', since: 1 }],
        ]),
      }),
      context({ processStart: false }),
      source,
    );
    expect(building.action === 'resume' && Object.fromEntries(building.backfill)).toEqual({
      a: 'its backfill had not finished (backfilling: a new view)',
    });
  });

  it('rebuilds every view when the source cannot backfill, the layout changed or a rebuild was asked for', async () => {
    const kafka = await decideStart(
      stored({ fingerprints: JSON.stringify({ a: 'fa', b: 'fb' }) }),
      context({ canBackfill: false }),
      source,
    );
    expect(kafka).toMatchObject({ action: 'rebuild', lost: false });
    expect(kafka.action === 'rebuild' && kafka.reason).toContain('c: a new view');
    expect(kafka.action === 'rebuild' && kafka.reason).toContain('this source rebuilds every view');
    expect(await decideStart(stored({ layout: '0' }), context(), source)).toMatchObject({
      action: 'rebuild',
    });
    expect(await decideStart(stored({ rebuild: 'a table was rewritten' }), context(), source)).toMatchObject({
      action: 'rebuild',
      reason: 'a table was rewritten',
    });
  });
});

const tx = (end: number, part?: { commit: number; final: boolean }): ChangeBatch => ({
  kind: 'transaction',
  changes: [
    {
      table: 't',
      op: 'c',
      before: null,
      after: { id: end },
      key: { id: end },
      source: { connector: 'postgresql', name: 's', db: '', snapshot: false },
    },
  ],
  position: part && !part.final ? [] : [{ stream: 'pg:tmp', token: String(end).padStart(20, '0') }],
  ...(part
    ? {
        part: {
          txn: String(part.commit).padStart(20, '0'),
          index: 0,
          final: part.final,
          probe: [{ stream: 'pg:tmp', token: String(part.commit).padStart(20, '0') }],
        },
      }
    : {}),
});
const token = (n: number): string => String(n).padStart(20, '0');
const at = (n: number): Map<string, string> => new Map([['pg:tmp', token(n)]]);

describe('Backfill', () => {
  function fed(batches: ChangeBatch[]): Backfill {
    let release: (() => void) | null = null;
    const gate = new Promise<void>((r) => (release = r));
    const backfill = new Backfill({
      views: new Map([['v', 'a new view']]),
      tables: ['t'],
      seeds: [],
      maxQueuedChanges: 1000,
      source: {
        delivery: 'exactly-ordered',
        async *start() {
          yield* batches;
          await gate;
        },
        ack: async () => undefined,
        close: async () => release?.(),
      },
    });
    return backfill;
  }
  const started = async (b: Backfill): Promise<void> => {
    b.start(() => undefined);
    await new Promise((r) => setTimeout(r, 10));
  };

  it('hands over only once its snapshot is in and it holds what the main stream applied, neither inside a transaction', async () => {
    const snapshot: ChangeBatch[] = [
      { kind: 'snapshot', changes: tx(1).changes, position: [] },
      { kind: 'snapshot', changes: [], position: [{ stream: 'pg:tmp', token: token(100) }], live: true },
    ];
    const backfill = fed([
      ...snapshot,
      tx(120),
      tx(130, { commit: 125, final: false }),
      tx(130, { commit: 125, final: true }),
      tx(140),
    ]);
    await started(backfill);
    expect(backfill.canHandOver(at(90), false)).toBe(false);
    // Snapshot chunks and whole transactions go together; the position follows what was taken.
    expect(backfill.take(100)!.batches.map((b) => b.kind)).toEqual(['snapshot', 'transaction']);
    expect(backfill.position.get('pg:tmp')).toBe(token(120));
    expect(backfill.canHandOver(at(90), false)).toBe(true);
    expect(backfill.canHandOver(at(90), true)).toBe(false);
    expect(backfill.canHandOver(at(125), false)).toBe(false);
    // A part is taken alone, and inside a transaction there is no hand-over.
    expect(backfill.take(100)!.batches).toHaveLength(1);
    expect(backfill.midTransaction).toBe(true);
    expect(backfill.canHandOver(at(120), false)).toBe(false);
    backfill.take(100);
    expect(backfill.midTransaction).toBe(false);
    expect(backfill.position.get('pg:tmp')).toBe(token(130));
    expect(backfill.canHandOver(at(130), false)).toBe(true);
    // Taken batches carry no position and no part: they never move the main checkpoint.
    expect(backfill.take(100)!.batches[0]).toEqual({
      kind: 'transaction',
      changes: tx(140).changes,
      position: [],
    });
    await backfill.close();
  });

  it('with only live views to read, has nothing to stream and hands over at once', () => {
    const backfill = new Backfill({
      views: new Map([['top', 'a new view']]),
      tables: [],
      seeds: ['agg'],
      source: null,
      maxQueuedChanges: 10,
    });
    expect(backfill.canHandOver(at(5), false)).toBe(true);
  });

  it('judges main-stream transactions against the threshold by their end, and parts by their commit', () => {
    expect(coveredBy(tx(100), at(100))).toBe(true);
    expect(coveredBy(tx(101), at(100))).toBe(false);
    expect(coveredBy(tx(0, { commit: 99, final: false }), at(100))).toBe(true);
    expect(coveredBy(tx(0, { commit: 100, final: false }), at(100))).toBe(false);
  });

  it("describes each table's progress: rows of the estimate, rate, time left", () => {
    const status: ViewStatus = {
      state: 'building',
      since: 0,
      backfill: {
        tables: [
          { table: 'public.orders', rows: 20000, estimatedRows: 20000, done: true },
          { table: 'public.order_items', rows: 10000, estimatedRows: 40000, done: false },
          { table: 'public.products', rows: 10, estimatedRows: 0, done: false },
        ],
      },
    };
    expect(describeBackfill(status, 10_000)).toEqual([
      'public.orders: 20000 rows read',
      'public.order_items: 10000 of ~40000 rows (25 %), 1000 rows/s, ~30 s left',
      'public.products: 10 rows, 1 rows/s',
    ]);
  });

  it('a window: stored and read back, reached per stream, Kafka records placed by their offsets, images under a namespace', () => {
    const window = {
      views: ['v'],
      until: new Map([['kafka:t:0', token(7)]]),
      images: 'backfill~ab~',
      tables: ['public.t'],
    };
    expect(decodeWindow(encodeWindow(window))).toEqual(window);
    expect(reached(new Map([['kafka:t:0', token(6)]]), window.until)).toBe(false);
    expect(
      reached(
        new Map([
          ['kafka:t:0', token(7)],
          ['kafka:u:0', token(1)],
        ]),
        window.until,
      ),
    ).toBe(true);
    expect(reached(new Map(), window.until)).toBe(false);
    const kafka = (offset: string) => ({
      ...tx(1).changes[0]!,
      source: {
        connector: 'postgresql' as const,
        name: 's',
        db: '',
        snapshot: false as const,
        kafka: { topic: 't', partition: 0, offset },
      },
    });
    expect(changePositions([kafka('12'), kafka('9'), tx(3).changes[0]!])).toEqual(
      new Map([['kafka:t:0', token(12)]]),
    );
    const writes = {
      clear: new Set(['public.t']),
      set: new Map([['public.t', new Map([['k', { expected: null, value: 'x' }]])]]),
    };
    const moved = inNamespace(writes, 'backfill~ab~');
    expect([...moved.clear]).toEqual(['backfill~ab~public.t']);
    expect([...mergeImageWrites(writes, moved).set.keys()]).toEqual(['public.t', 'backfill~ab~public.t']);
  });
});

describe('statusOf', () => {
  it("shows a changed view's new definition being built beside the served one, and the served one otherwise", () => {
    const building: ViewStatus = {
      state: 'building',
      reason: 'backfilling: its definition changed',
      since: 2,
    };
    const state = stored({ next: new Map([['a', { ...building, fingerprint: 'fa2' }]]) });
    expect(statusOf(state, { name: 'a', fingerprint: 'fa2' })).toEqual({
      status: { ...building, fingerprint: 'fa2' },
      beside: true,
    });
    // An instance of the old config sees the definition it serves.
    expect(statusOf(state, { name: 'a', fingerprint: 'fa' })).toEqual({ status: live, beside: false });
    expect(statusOf(state, { name: 'b', fingerprint: 'fb' })).toEqual({ status: live, beside: false });
  });
});
