/**
 * Project: the output fields, each an expression over the input row; the key is kept. Stateless.
 */
import type { ExprNode } from '../expr.ts';
import { evaluate } from '../plan/evaluate.ts';
import type { Value } from '../../core/values.ts';
import { rowOfValues } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';

export class Project implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  private readonly fields: readonly { readonly name: string; readonly node: ExprNode }[];

  constructor(id: string, input: Operator, fields: readonly { readonly name: string; readonly node: ExprNode }[]) {
    this.id = id;
    this.inputs = [input];
    this.fields = fields;
    this.makeRow = rowOfValues(fields.map((f) => f.name));
  }

  private readonly makeRow: (values: readonly Value[]) => Row;

  step([batch]: readonly DeltaBatch[]): DeltaBatch {
    const deltas: Delta[] = batch!.deltas.map((d) => {
      if (d.row === null) return d;
      const values: Value[] = [];
      for (const f of this.fields) values.push(evaluate(f.node, d.row));
      return { key: d.key, row: this.makeRow(values), weight: d.weight };
    });
    return { clear: batch!.clear, deltas };
  }
}
