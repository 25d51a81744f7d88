/**
 * View input: another declared view's output changes, as the rows of a source of this view — its
 * fields renamed `<alias>.<field>` like a table's columns. The other view is maintained once; every
 * view reading it consumes its output deltas in the same batch. Stateless.
 */
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';

export class ViewInput implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  private readonly names: readonly [string, string][];

  constructor(id: string, producer: Operator, alias: string, fields: readonly string[]) {
    this.id = id;
    this.inputs = [producer];
    this.names = fields.map((f) => [f, `${alias}.${f}`]);
  }

  step([batch]: readonly DeltaBatch[]): DeltaBatch {
    const deltas: Delta[] = batch!.deltas.map((d) => {
      if (d.row === null) return d;
      const row: Row = {};
      for (const [field, name] of this.names) row[name] = d.row[field] ?? null;
      return { key: d.key, row, weight: d.weight };
    });
    return { clear: batch!.clear, deltas };
  }
}
