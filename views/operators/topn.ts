/**
 * Top-N: the first `limit` rows of each partition (or of all rows) in an order, ties broken by the
 * view key — PostgreSQL's `ORDER BY … LIMIT n`, or `row_number() OVER (PARTITION BY …) <= n`.
 *
 *   state   <base>:t:<partition>   ZSET of every input row of the partition, member
 *                                  <sort key>\x00\x00<view key>\x00\x00<row>, the row as the JSON
 *                                  array of its values in field order; lex order = the view's order
 *                                  (a member that leaves is replaced exactly: the next one is
 *                                  already there)
 *   output  −row / +row as rows enter and leave the first `limit`
 *
 * Sort keys are byte-ordered encodings of the order values (core/encoding.ts sortComponent): ascending
 * terms as they are, NULLs last; descending terms hex-encoded with every digit complemented, NULLs
 * first — PostgreSQL's defaults for ASC and DESC.
 *
 * Reads: the first `limit + k` members of each touched partition, k = the rows this batch removes
 * from it: the new first `limit` are among them and the rows the batch adds.
 */
import { operatorStateBase } from '../store/keys.ts';
import { compareBytes, encodeRowKey, sortComponent } from '../../core/encoding.ts';
import { PlanError } from '../errors.ts';
import type { ExprNode } from '../expr.ts';
import { evaluate } from '../plan/evaluate.ts';
import type { Read, StateStore } from '../store/state-store.ts';
import type { ColumnType, Value } from '../../core/values.ts';
import { rowCodec, type RowCodec } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';

export interface TopNSpec {
  readonly id: string;
  readonly partition: readonly ExprNode[];
  readonly partitionTypes: readonly ColumnType[];
  readonly order: readonly { readonly node: ExprNode; readonly desc: boolean }[];
  readonly limit: number;
  readonly keyFields: readonly { readonly name: string; readonly type: ColumnType }[];
}

const PART = '\x00\x00';

interface PartitionDelta {
  readonly removed: Set<string>;
  readonly added: Set<string>;
}

export class TopN implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  readonly statePattern: string;
  private readonly spec: TopNSpec;
  private readonly base: string;
  private planned: { batch: DeltaBatch; partitions: Map<string, PartitionDelta> } | null = null;

  /** How a member holds its row (the input rows' fields, in order). */
  private readonly stored: RowCodec;

  constructor(spec: TopNSpec, input: Operator, prefix: string, inputFields: readonly string[]) {
    this.id = spec.id;
    this.stored = rowCodec(inputFields);
    this.spec = spec;
    this.inputs = [input];
    this.base = operatorStateBase(prefix, spec.id);
    this.statePattern = `${this.base}:*`;
  }

  private setKey(partition: string): string {
    return `${this.base}:t:${partition}`;
  }

  /** A row's member: its sort key, view key and content. */
  member(row: Row): string {
    const sort = this.spec.order.map((o) => sortComponent(o.node.type, evaluate(o.node, row), o.desc)).join('\x00');
    const key = encodeRowKey(
      this.spec.keyFields.map((k) => k.type),
      this.spec.keyFields.map((k) => row[k.name] ?? null),
    );
    return `${sort}${PART}${key}${PART}${this.stored.encode(row)}`;
  }

  private partitionsOf(batch: DeltaBatch): Map<string, PartitionDelta> {
    if (this.planned?.batch === batch) return this.planned.partitions;
    const partitions = new Map<string, PartitionDelta>();
    for (const d of batch.deltas) {
      if (d.row === null) throw new PlanError(`${this.id}: a row left without its old content, which the top-N needs; set REPLICA IDENTITY FULL on the source table`);
      const partition = encodeRowKey(this.spec.partitionTypes, this.spec.partition.map((p) => evaluate(p, d.row!)));
      let p = partitions.get(partition);
      if (!p) partitions.set(partition, (p = { removed: new Set(), added: new Set() }));
      const m = this.member(d.row);
      if (d.weight === 1) {
        if (!p.removed.delete(m)) p.added.add(m);
      } else if (!p.added.delete(m)) p.removed.add(m);
    }
    this.planned = { batch, partitions };
    return partitions;
  }

  needs([batch]: readonly DeltaBatch[], store: StateStore): Read[] {
    const reads: Read[] = [];
    if (batch!.clear) {
      if (store.keys(this.statePattern) === undefined) reads.push({ kind: 'keys', pattern: this.statePattern });
      return reads;
    }
    for (const [partition, p] of this.partitionsOf(batch!)) {
      const count = this.spec.limit + p.removed.size;
      if (store.zhead(this.setKey(partition), count) === undefined) reads.push({ kind: 'zhead', key: this.setKey(partition), count });
    }
    return reads;
  }

  step([batch]: readonly DeltaBatch[], store: StateStore): DeltaBatch {
    const out: Delta[] = [];
    const { limit } = this.spec;
    if (batch!.clear) for (const key of store.keys(this.statePattern) ?? []) store.del(key);
    for (const [partition, p] of this.partitionsOf(batch!)) {
      const key = this.setKey(partition);
      const head = batch!.clear ? [] : [...store.zhead(key, limit + p.removed.size)!];
      const before = head.slice(0, limit);
      const after = mergeSorted(
        head.filter((m) => !p.removed.has(m)),
        [...p.added].sort(compareBytes),
        limit,
      );
      const inBefore = new Set(before);
      const inAfter = new Set(after);
      for (const m of before) if (!inAfter.has(m)) out.push(this.deltaOf(m, -1));
      for (const m of after) if (!inBefore.has(m)) out.push(this.deltaOf(m, 1));
      for (const m of p.removed) store.zrem(key, m);
      for (const m of p.added) store.zadd(key, m);
    }
    this.planned = null;
    return { clear: batch!.clear, deltas: out };
  }

  private deltaOf(member: string, weight: 1 | -1): Delta {
    const [, key, stored] = member.split(PART);
    return { key: key!, row: this.stored.decode(stored!), weight };
  }
}

/** The first `limit` of two ascending lists (the head is sorted already: only the added rows need sorting). */
function mergeSorted(a: readonly string[], b: readonly string[], limit: number): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < a.length || j < b.length)) {
    if (j >= b.length || (i < a.length && compareBytes(a[i]!, b[j]!) <= 0)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}
