/**
 * Compiled row shapes (views/operators/rows.ts) make the same rows as the generic code they
 * replace — spreading, renaming in a loop — for any field names: quotes, backslashes, line
 * separators, `__proto__`, names of Object.prototype's members — and a join side's stored form
 * (rowCodec) reads back as the row it stored.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatRows, projectImage, renameRow, rowCodec, rowOfValues } from '../../../views/operators/rows.ts';
import type { Row } from '../../../views/operators/types.ts';

const name = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom(
    '__proto__',
    'constructor',
    'toString',
    'a"b',
    'a\\b',
    'a\u2028b',
    'o.id',
    '',
    'r0',
    'absent',
  ),
);
const names = fc.uniqueArray(name, { maxLength: 6 });
const value = fc.oneof(fc.constant(null), fc.string({ maxLength: 4 }), fc.boolean(), fc.integer());

/** A row built field by field with defineProperty (assignment to `__proto__` would set the prototype). */
function rowOf(entries: readonly (readonly [string, unknown])[]): Row {
  const row: Row = {};
  for (const [k, v] of entries)
    Object.defineProperty(row, k, { value: v, enumerable: true, writable: true, configurable: true });
  return row;
}

/** Own fields in order, and the prototype: what a consumer of the row can tell apart. */
const shape = (row: object): unknown => [Object.getPrototypeOf(row), Object.entries(row)];

describe('compiled row shapes', () => {
  it('concatRows: the left fields, then the right ones, as spreading both did', () => {
    fc.assert(
      fc.property(
        names,
        names,
        fc.array(value, { minLength: 12, maxLength: 12 }),
        (left, rightAll, values) => {
          const right = rightAll.filter((n) => !left.includes(n)); // the two sides never share a name
          const l = rowOf(left.map((n, i) => [n, values[i]]));
          const r = rowOf(right.map((n, i) => [n, values[6 + i]]));
          const spread = rowOf([...Object.entries(l), ...Object.entries(r)]);
          expect(shape(concatRows(left, right)(l, r))).toEqual(shape(spread));
        },
      ),
    );
  });

  it('renameRow: each field under its new name, a missing one NULL', () => {
    fc.assert(
      fc.property(names, names, fc.array(value, { minLength: 6, maxLength: 6 }), (from, toAll, values) => {
        const to = toAll.slice(0, from.length);
        const pairs = to.map((t, i) => [from[i]!, t] as const);
        // Every other field is present in the input row; the first one may be missing.
        const input = rowOf(from.slice(1).map((n, i) => [n, values[i + 1]]));
        // Read as the loop read it (`row[field] ?? null`); made as own fields, whatever their name.
        const expected = rowOf(pairs.map(([f, t]) => [t, input[f] ?? null]));
        expect(shape(renameRow(pairs)(input))).toEqual(shape(expected));
      }),
    );
  });

  it("projectImage: the columns renamed, or 'unknown' when one is missing or the absent sentinel", () => {
    const absent = Symbol('absent');
    fc.assert(
      fc.property(
        names,
        fc.array(fc.oneof(value, fc.constant(absent), fc.constant(undefined)), {
          minLength: 6,
          maxLength: 6,
        }),
        (columns, values) => {
          const image = rowOf(columns.map((c, i) => [c, values[i]])) as Record<string, unknown>;
          const pairs = columns.map((c) => [c, `x.${c}`] as const);
          const unknown = columns.some((_, i) => values[i] === undefined || values[i] === absent);
          const made = projectImage(pairs)(image, absent);
          if (unknown) expect(made).toBe('unknown');
          else expect(shape(made as Row)).toEqual(shape(rowOf(pairs.map(([c, n]) => [n, image[c]]))));
        },
      ),
    );
  });

  it('rowOfValues: names[i] holds values[i]', () => {
    fc.assert(
      fc.property(names, fc.array(value, { minLength: 6, maxLength: 6 }), (fields, values) => {
        expect(shape(rowOfValues(fields)(values))).toEqual(
          shape(rowOf(fields.map((f, i) => [f, values[i]]))),
        );
      }),
    );
  });

  it('rowCodec: a row stored as the array of its values reads back as the same row, field order kept', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom('a"b', '\\', '\u2028', '{"x":1}', '12.50'),
    );
    const anyValue = fc.oneof(value, text, fc.double({ noNaN: true, noDefaultInfinity: true }));
    fc.assert(
      fc.property(names, fc.array(anyValue, { minLength: 6, maxLength: 6 }), (fields, values) => {
        const row = rowOf(fields.map((f, i) => [f, values[i]]));
        const codec = rowCodec(fields);
        const stored = codec.encode(row);
        // As JSON keeps them (the object form stored before lost -0 the same way).
        expect(JSON.parse(stored)).toEqual(JSON.parse(JSON.stringify(fields.map((_, i) => values[i]))));
        expect(shape(codec.decode(stored))).toEqual(shape(JSON.parse(JSON.stringify(row)) as Row));
      }),
    );
  });
});
