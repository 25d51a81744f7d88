/**
 * View input: another declared view's output changes, as the rows of a source of this view — its
 * fields renamed `<alias>.<field>` like a table's columns. The other view is maintained once; every
 * view reading it consumes its output deltas in the same batch. Stateless.
 */
import { renameRow } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';

export class ViewInput implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  private readonly rename: (row: Row) => Row;

  constructor(id: string, producer: Operator, alias: string, fields: readonly string[]) {
    this.id = id;
    this.inputs = [producer];
    this.rename = renameRow(fields.map((f) => [f, `${alias}.${f}`]));
  }

  step([batch]: readonly DeltaBatch[]): DeltaBatch {
    const deltas: Delta[] = batch!.deltas.map((d) => {
      if (d.row === null) return d;
      return { key: d.key, row: this.rename(d.row), weight: d.weight };
    });
    return { clear: batch!.clear, deltas };
  }
}
