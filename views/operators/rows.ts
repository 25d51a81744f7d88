/**
 * Rows of a fixed shape, made by functions compiled once per operator: an object literal with the
 * field names written out. V8 makes such an object from a template in nanoseconds and every row
 * shares one hidden class; spreading two rows (`{ ...a, ...b }`) cost a join 1.6 µs per output row
 * (a 4-field and a 3-field row), and assigning fields one by one walks a chain of shape transitions.
 *
 * Field names are written as JSON string literals (any name is safe). A name `__proto__` in a
 * literal would set the prototype instead of a field: such a shape falls back to assignment by
 * `Object.defineProperty`, slower but right.
 */
import type { Row } from './types.ts';

/** Where one field of the made row comes from: argument `from`'s field `field`. */
interface FieldSource {
  readonly name: string;
  readonly from: number;
  readonly field: string;
  /** Its value expression instead (the arguments are r0, r1, …; `x` the extra argument). */
  readonly expr?: string;
}

const literal = (name: string): string => JSON.stringify(name);

function compile<F>(args: readonly string[], fields: readonly FieldSource[], prelude = ''): F {
  const value = (f: FieldSource): string => f.expr ?? `r${f.from}[${literal(f.field)}]`;
  const body = fields.some((f) => f.name === '__proto__')
    ? `${prelude}const row = {};\n${fields
        .map(
          (f) =>
            `Object.defineProperty(row, ${literal(f.name)}, { value: ${value(f)}, enumerable: true, writable: true, configurable: true });`,
        )
        .join('\n')}\nreturn row;`
    : `${prelude}return { ${fields.map((f) => `${literal(f.name)}: ${value(f)}`).join(', ')} };`;
  // new Function: the names are JSON string literals (above), never code.
  return new Function(...args, body) as F;
}

/** `(left, right) => left's fields then right's` (a joined row; `right` may be a row of NULLs). */
export function concatRows(
  left: readonly string[],
  right: readonly string[],
): (left: Row, right: Row) => Row {
  return compile(
    ['r0', 'r1'],
    [
      ...left.map((name) => ({ name, from: 0, field: name })),
      ...right.map((name) => ({ name, from: 1, field: name })),
    ],
  );
}

/** `row => row's fields under new names`, a missing one NULL (`[from, to]` pairs). */
export function renameRow(names: readonly (readonly [from: string, to: string])[]): (row: Row) => Row {
  return compile(
    ['r0'],
    names.map(([from, to]) => ({ name: to, from: 0, field: from, expr: `r0[${literal(from)}] ?? null` })),
  );
}

/**
 * `(image, absent) => the image's columns under new names`, or 'unknown' when one of them is
 * undefined or the `absent` sentinel (an image without some columns: a key-only old row).
 */
export function projectImage(
  names: readonly (readonly [column: string, name: string])[],
): (image: Readonly<Record<string, unknown>>, absent: unknown) => Row | 'unknown' {
  const reads = names
    .map(
      ([column], i) =>
        `const v${i} = r0[${literal(column)}];\nif (v${i} === undefined || v${i} === absent) return 'unknown';\n`,
    )
    .join('');
  return compile(
    ['r0', 'absent'],
    names.map(([, name], i) => ({ name, from: 0, field: name, expr: `v${i}` })),
    reads,
  );
}

/** `(values) => { names[i]: values[i] }`: a row from values computed in order. */
export function rowOfValues(names: readonly string[]): (values: readonly unknown[]) => Row {
  return compile(
    ['r0'],
    names.map((name, i) => ({ name, from: 0, field: name, expr: `r0[${i}]` })),
  );
}

/**
 * A row of a fixed shape stored as the JSON array of its values in field order (a join side's
 * rows): the field names are not repeated in every stored row, and a read row is made by a
 * literal (one hidden class) instead of JSON.parse making an object field by field.
 */
export interface RowCodec {
  readonly encode: (row: Row) => string;
  readonly decode: (json: string) => Row;
}

export function rowCodec(names: readonly string[]): RowCodec {
  const values = rowOfValues(names);
  // new Function: the names are JSON string literals, never code.
  const encode = new Function(
    'r0',
    `return JSON.stringify([${names.map((n) => `r0[${literal(n)}]`).join(', ')}]);`,
  ) as (row: Row) => string;
  return { encode, decode: (json) => values(JSON.parse(json) as unknown[]) };
}
