/**
 * Filter: keeps the rows for which a predicate is TRUE (NULL and FALSE both drop a row, as in
 * SQL). A row that stops matching leaves (its −old passes, its +new does not); one that starts
 * matching enters. Stateless.
 */
import type { ExprNode } from '../expr.ts';
import { isTrue } from '../plan/evaluate.ts';
import type { Delta, DeltaBatch, Operator } from './types.ts';

export class Filter implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  private readonly predicate: ExprNode;

  constructor(id: string, input: Operator, predicate: ExprNode) {
    this.id = id;
    this.inputs = [input];
    this.predicate = predicate;
  }

  step([batch]: readonly DeltaBatch[]): DeltaBatch {
    const deltas: Delta[] = [];
    // A row of unknown content passes: it can only be a retraction, resolved by the view's output.
    for (const d of batch!.deltas) if (d.row === null || isTrue(this.predicate, d.row)) deltas.push(d);
    return deltas.length === batch!.deltas.length ? batch! : { clear: batch!.clear, deltas };
  }
}
