/**
 * Evaluate a scalar expression on one row, with SQL semantics: NULL propagates through operators,
 * AND/OR use three-valued logic, comparisons with NULL are NULL (and a NULL predicate keeps no
 * row), integer division truncates, and division by zero is NULL (printed as `NULLIF(b, 0)`).
 *
 * Exact types stay exact: int8 arithmetic runs on BigInt, numeric on ingest/decimal.ts.
 */
import {
  addDecimal,
  divideDecimal,
  isZeroDecimal,
  multiplyDecimal,
  subtractDecimal,
} from '../../core/decimal.ts';
import type { Row } from '../../ingest/change.ts';
import type { ColumnType, Value } from '../../core/values.ts';
import { compareValues } from '../../core/encoding.ts';
import type { ArithmeticFn, CallNode, ExprNode } from '../expr.ts';
import {
  absValue,
  castValue,
  compareSql,
  comparisonFails,
  dateTruncValue,
  lengthValue,
  likeValue,
  modValue,
  roundValue,
} from '../functions.ts';

export function evaluate(node: ExprNode, row: Row): Value {
  switch (node.kind) {
    case 'column':
      return row[node.column] ?? null;
    case 'literal':
      return node.value;
    case 'call':
      return evaluateCall(node, row);
  }
}

/** A predicate keeps a row only when it is TRUE (NULL and FALSE both drop it). */
export function isTrue(node: ExprNode | null, row: Row): boolean {
  return node === null || evaluate(node, row) === true;
}

function evaluateCall(node: CallNode, row: Row): Value {
  const { fn, args } = node;
  switch (fn) {
    case 'and': {
      let unknown = false;
      for (const arg of args) {
        const v = evaluate(arg, row);
        if (v === false) return false;
        if (v === null) unknown = true;
      }
      return unknown ? null : true;
    }
    case 'or': {
      let unknown = false;
      for (const arg of args) {
        const v = evaluate(arg, row);
        if (v === true) return true;
        if (v === null) unknown = true;
      }
      return unknown ? null : false;
    }
    case 'not': {
      const v = evaluate(args[0]!, row);
      return v === null ? null : !v;
    }
    case 'isNull':
      return evaluate(args[0]!, row) === null;
    case 'isNotNull':
      return evaluate(args[0]!, row) !== null;
    case 'coalesce': {
      for (const arg of args) {
        const v = evaluate(arg, row);
        if (v !== null) return v;
      }
      return null;
    }
    case 'in': {
      const v = evaluate(args[0]!, row);
      if (v === null) return null;
      const type = args[0]!.type;
      for (let i = 1; i < args.length; i++) {
        const candidate = evaluate(args[i]!, row);
        if (candidate !== null && compareValues(type, v, candidate) === 0) return true;
      }
      return false;
    }
    case 'lower':
    case 'upper': {
      const v = evaluate(args[0]!, row);
      if (v === null) return null;
      return fn === 'lower' ? String(v).toLowerCase() : String(v).toUpperCase();
    }
    case 'concat': {
      let text = '';
      for (const arg of args) {
        const v = evaluate(arg, row);
        if (v === null) return null;
        text += String(v);
      }
      return text;
    }
    case 'eq':
    case 'ne':
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte': {
      const a = evaluate(args[0]!, row);
      const b = evaluate(args[1]!, row);
      if (a === null || b === null) return null;
      const c = compareValues(comparisonType(args[0]!.type, args[1]!.type), a, b);
      switch (fn) {
        case 'eq':
          return c === 0;
        case 'ne':
          return c !== 0;
        case 'lt':
          return c < 0;
        case 'lte':
          return c <= 0;
        case 'gt':
          return c > 0;
        case 'gte':
          return c >= 0;
      }
    }
    // falls through (unreachable: the inner switch returns)
    case 'add':
    case 'sub':
    case 'mul':
    case 'div': {
      const a = evaluate(args[0]!, row);
      const b = evaluate(args[1]!, row);
      if (a === null || b === null) return null;
      return arithmetic(fn, node.type, a, b);
    }
    case 'mod': {
      const a = evaluate(args[0]!, row);
      const b = evaluate(args[1]!, row);
      if (a === null || b === null) return null;
      return modValue(
        node.type,
        castValue(args[0]!.type, node.type, a),
        castValue(args[1]!.type, node.type, b),
      );
    }
    case 'between': {
      // x >= low AND x <= high, as PostgreSQL runs it: AND stops at the first FALSE; a comparison
      // that raises an error there (a numeric beyond float8's range met by a float) makes it NULL.
      const x = evaluate(args[0]!, row);
      const conjunct = (bound: ExprNode, above: boolean): boolean | null | undefined => {
        const b = evaluate(bound, row);
        if (comparisonFails(args[0]!.type, x, bound.type, b)) return undefined;
        if (x === null || b === null) return null;
        const order = compareSql(args[0]!.type, x, bound.type, b);
        return above ? order >= 0 : order <= 0;
      };
      const first = conjunct(args[1]!, true);
      if (first === undefined) return null;
      if (first === false) return false;
      const second = conjunct(args[2]!, false);
      if (second === undefined) return null;
      if (second === false) return false;
      return first === null || second === null ? null : true;
    }
    case 'like':
    case 'notLike': {
      const text = evaluate(args[0]!, row);
      const pattern = evaluate(args[1]!, row);
      if (text === null || pattern === null) return null;
      const matched = likeValue(String(text), String(pattern));
      return matched === null ? null : fn === 'like' ? matched : !matched;
    }
    case 'case': {
      // args: condition, value, condition, value, …[, else]
      for (let i = 0; i + 1 < args.length; i += 2) {
        if (evaluate(args[i]!, row) === true) return caseResult(args[i + 1]!, node, row);
      }
      return args.length % 2 === 1 ? caseResult(args[args.length - 1]!, node, row) : null;
    }
    case 'length': {
      const v = evaluate(args[0]!, row);
      return v === null ? null : lengthValue(args[0]!.type, v);
    }
    case 'abs': {
      const v = evaluate(args[0]!, row);
      return v === null ? null : absValue(node.type, v);
    }
    case 'round': {
      const v = evaluate(args[0]!, row);
      if (v === null) return null;
      const digits = args[1] ? evaluate(args[1], row) : null;
      if (args[1] && digits === null) return null;
      return roundValue(args[0]!.type, v, digits === null ? null : Number(digits));
    }
    case 'cast': {
      const v = evaluate(args[0]!, row);
      return v === null ? null : castValue(args[0]!.type, node.type, v);
    }
    case 'dateTrunc': {
      const v = evaluate(args[1]!, row);
      return v === null ? null : dateTruncValue(String(evaluate(args[0]!, row)), args[1]!.type, v);
    }
  }
}

/** A CASE branch's value in the CASE's (common) type. */
function caseResult(branch: ExprNode, node: CallNode, row: Row): Value {
  const v = evaluate(branch, row);
  return v === null ? null : castValue(branch.type, node.type, v);
}

/** Mixed numeric comparisons compare as numbers; anything else compares in the left side's type. */
function comparisonType(a: ColumnType, b: ColumnType): ColumnType {
  return a === 'numeric' || b === 'numeric' ? 'numeric' : a;
}

function arithmetic(fn: ArithmeticFn, type: ColumnType, a: Value, b: Value): Value {
  switch (type) {
    case 'float8': {
      const x = Number(a);
      const y = Number(b);
      if (fn === 'div' && y === 0) return null;
      return fn === 'add' ? x + y : fn === 'sub' ? x - y : fn === 'mul' ? x * y : x / y;
    }
    case 'int8': {
      const x = BigInt(a as string | number);
      const y = BigInt(b as string | number);
      if (fn === 'div' && y === 0n) return null;
      return String(fn === 'add' ? x + y : fn === 'sub' ? x - y : fn === 'mul' ? x * y : x / y);
    }
    case 'numeric': {
      const x = String(a);
      const y = String(b);
      if (fn === 'div') return isZeroDecimal(y) ? null : divideDecimal(x, y);
      return fn === 'add' ? addDecimal(x, y) : fn === 'sub' ? subtractDecimal(x, y) : multiplyDecimal(x, y);
    }
    default: {
      // int2/int4: exact in doubles; division truncates toward zero as in SQL.
      const x = Number(a);
      const y = Number(b);
      if (fn === 'div') return y === 0 ? null : Math.trunc(x / y);
      return fn === 'add' ? x + y : fn === 'sub' ? x - y : x * y;
    }
  }
}
