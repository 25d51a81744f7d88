/**
 * The scalar functions (mod, between, like, notLike, caseWhen, length, abs, round, cast, dateTrunc)
 * against PostgreSQL itself, property-based: random values (NULLs, int8 near ±2^63, 30-digit
 * numerics of mixed scales, float NaN/±Infinity/-0/ties, text with multi-byte characters and LIKE
 * metacharacters, timestamps across year and DST boundaries with microseconds, BC and infinity) go
 * into a temporary table; PostgreSQL prints them back and they are decoded as the service decodes
 * them (decodePgText). Each expression is then evaluated by views/plan/evaluate.ts and, as the SQL
 * views/sql.ts prints, by PostgreSQL on the same row: the values must be equal, the type
 * PostgreSQL infers must be the expression's, and a non-nullable expression must never be NULL.
 *
 * The only differences allowed are the documented ones (README.md, "Declaring views"): where
 * PostgreSQL raises an error the view holds NULL; numeric NaN/Infinity are not modelled; text →
 * date reads ISO dates only.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { source } from '../../ingest/source-options.ts';
import { decodePgText, type ColumnType, type Value } from '../../core/values.ts';
import {
  abs,
  between,
  cast,
  caseWhen,
  dateTrunc,
  length,
  like,
  mod,
  notLike,
  round,
  table,
  view,
  type Expr,
  type Literal,
} from '../../views/define.ts';
import type { ExprNode } from '../../views/expr.ts';
import { CAST_TARGETS, castProblem, TRUNC_UNITS, type CastTarget } from '../../views/functions.ts';
import { evaluate } from '../../views/plan/evaluate.ts';
import { createRegistry } from '../../views/registry.ts';
import { exprToSql } from '../../views/sql.ts';
import { decimalText } from '../support/arbitraries.ts';
import { connect } from '../support/shop.ts';

const TYPES = [
  'int2',
  'int4',
  'int8',
  'numeric',
  'float4',
  'float8',
  'text',
  'varchar',
  'bpchar',
  'bool',
  'date',
  'time',
  'timestamp',
  'timestamptz',
  'uuid',
] as const;
type T = (typeof TYPES)[number];
const SLOTS = 10;
const TABLE = 'public.t';

const columnName = (slot: number, type: ColumnType): string => `c${slot}_${type}`;
const columns: Record<string, `${T}?`> = {};
for (const type of TYPES)
  for (let slot = 0; slot < SLOTS; slot++) columns[columnName(slot, type)] = `${type}?`;
const t = table(TABLE, { id: 'int4', ...columns }, { key: 'id' });

// ---------------------------------------------------------------------------------------------
// Values, as PostgreSQL text (what goes into the table; what comes back is decoded)

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
const quote = (text: string): string => `'${text.replace(/'/g, "''")}'`;
const leap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysIn = (y: number, m: number): number =>
  m === 2 ? (leap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;

const int2 = fc.oneof(
  fc.integer({ min: -32768, max: 32767 }),
  fc.constantFrom(-32768, 32767, 0, -1, 1, 7, -7),
);
const int4 = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.integer({ min: -100, max: 100 }),
  fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, 0, -1),
);
const int8 = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.bigInt({ min: 2n ** 63n - 1000n, max: 2n ** 63n - 1n }),
  fc.bigInt({ min: -(2n ** 63n), max: -(2n ** 63n) + 1000n }),
  fc.bigInt({ min: -1000n, max: 1000n }),
  fc.bigInt({ min: -(2n ** 31n) - 10n, max: -(2n ** 31n) + 10n }),
  fc.bigInt({ min: 2n ** 31n - 10n, max: 2n ** 31n + 10n }),
);
const numeric = fc.oneof(
  decimalText({ digits: 30, maxScale: 12 }),
  decimalText({ digits: 6, maxScale: 3 }),
  fc.constantFrom(
    '0.5',
    '-0.5',
    '2.5',
    '-2.5',
    '1.005',
    '0',
    '0.000',
    '-1.5',
    '2147483647.5',
    '-2147483648.5',
    '9223372036854775807.4',
    '-9223372036854775808.5',
    '32767.5',
    '1e-20',
    '1e400',
    '-1e-400',
    '3.5e38',
    '1e-46',
  ),
);
const float8 = fc.oneof(
  fc.double(),
  fc.double({ min: -1e6, max: 1e6 }),
  fc.integer({ min: -40, max: 40 }).map((n) => n / 4),
  fc.constantFrom(
    0.5,
    1.5,
    2.5,
    -2.5,
    -0.5,
    -0,
    0.1,
    1e15,
    1e16,
    123456789012345,
    123456789012344.5,
    1e-5,
    0.0001,
    2 ** 63,
    -(2 ** 63),
    2 ** 31 - 0.5,
    2 ** 31,
    -(2 ** 31) - 0.5,
    32767.5,
    5e-324,
    1.7976931348623157e308,
    1e23,
    9007199254740993,
    NaN,
    Infinity,
    -Infinity,
  ),
);
const float4 = fc.oneof(
  fc.float(),
  fc.float({ min: -1e6, max: 1e6, noNaN: true }),
  fc.constantFrom(
    0.1,
    1.5,
    2.5,
    -2.5,
    16777217,
    1e6,
    999999,
    1234567,
    3.4028235e38,
    1e-45,
    NaN,
    Infinity,
    -0,
  ),
);
const floatText = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));

const char = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'a',
      'b',
      'A',
      'z',
      '%',
      '_',
      '\\',
      ' ',
      'é',
      'ß',
      '日',
      '😀',
      "'",
      '\n',
      '0',
      '1',
      '-',
      '.',
      'e',
      't',
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 0x10ffff })
      .filter((c) => c < 0xd800 || c > 0xdfff)
      .map((c) => String.fromCodePoint(c)),
  },
);
const text = fc.array(char, { maxLength: 8 }).map((cs) => cs.join(''));
const bpchar = fc.tuple(text, fc.nat({ max: 3 })).map(([s, n]) => s + ' '.repeat(n));

/** A year (astronomical: 0 is 1 BC), weighted towards now. */
const year = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1968, max: 2032 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 9999 }) },
  { weight: 1, arbitrary: fc.integer({ min: -4712, max: 0 }) },
  { weight: 1, arbitrary: fc.integer({ min: 10000, max: 294275 }) },
);
const micros = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 999_999 }),
  fc.constantFrom(999_999, 500_000, 1000, 123_000),
);
const moment = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      y: year,
      mo: fc.integer({ min: 1, max: 12 }),
      d: fc.integer({ min: 1, max: 31 }),
      h: fc.integer({ min: 0, max: 23 }),
      mi: fc.integer({ min: 0, max: 59 }),
      s: fc.integer({ min: 0, max: 59 }),
      us: micros,
    }),
  },
  // year ends, leap days, DST changes (EU and US, in UTC), a Sunday night before a Monday
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      { y: 2023, mo: 12, d: 31, h: 23, mi: 59, s: 59, us: 999_999 },
      { y: 2024, mo: 1, d: 1, h: 0, mi: 0, s: 0, us: 0 },
      { y: 2024, mo: 2, d: 29, h: 12, mi: 0, s: 0, us: 1 },
      { y: 2000, mo: 2, d: 29, h: 0, mi: 0, s: 0, us: 0 },
      { y: 2024, mo: 3, d: 31, h: 0, mi: 59, s: 59, us: 999_999 },
      { y: 2024, mo: 3, d: 31, h: 1, mi: 0, s: 0, us: 0 },
      { y: 2024, mo: 10, d: 27, h: 0, mi: 59, s: 59, us: 999_999 },
      { y: 2024, mo: 3, d: 10, h: 7, mi: 0, s: 0, us: 0 },
      { y: 2024, mo: 11, d: 3, h: 6, mi: 0, s: 0, us: 0 },
      { y: 2024, mo: 6, d: 9, h: 23, mi: 59, s: 59, us: 999_999 },
      { y: 2024, mo: 6, d: 10, h: 0, mi: 0, s: 0, us: 0 },
      { y: 2020, mo: 12, d: 31, h: 23, mi: 0, s: 0, us: 0 },
      { y: 2021, mo: 1, d: 3, h: 23, mi: 0, s: 0, us: 0 },
      { y: 1, mo: 1, d: 1, h: 0, mi: 0, s: 0, us: 0 },
      { y: 0, mo: 12, d: 31, h: 23, mi: 59, s: 59, us: 999_999 },
      { y: -43, mo: 3, d: 15, h: 10, mi: 0, s: 0, us: 0 },
    ),
  },
);
const ymd = (m: { y: number; mo: number; d: number }): string =>
  `${pad(m.y <= 0 ? 1 - m.y : m.y, 4)}-${pad(m.mo)}-${pad(Math.min(m.d, daysIn(m.y, m.mo)))}`;
const bc = (m: { y: number }): string => (m.y <= 0 ? ' BC' : '');
const hms = (m: { h: number; mi: number; s: number; us: number }): string =>
  `${pad(m.h)}:${pad(m.mi)}:${pad(m.s)}.${pad(m.us, 6)}`;
const infinity = fc.constantFrom('infinity', '-infinity');
const timestampText = fc.oneof(
  { weight: 15, arbitrary: moment.map((m) => `${ymd(m)} ${hms(m)}${bc(m)}`) },
  { weight: 1, arbitrary: infinity },
);
const timestamptzText = fc.oneof(
  { weight: 15, arbitrary: moment.map((m) => `${ymd(m)} ${hms(m)}+00${bc(m)}`) },
  { weight: 1, arbitrary: infinity },
);
const dateText = fc.oneof(
  { weight: 15, arbitrary: moment.map((m) => `${ymd(m)}${bc(m)}`) },
  { weight: 1, arbitrary: infinity },
);
const timeText = moment.map((m) => hms(m));

/** Text that the casts from text may or may not read. */
const ws = fc.constantFrom('', '', '', ' ', '  ', '\t', '\n', ' \r\n');
const sign = fc.constantFrom('', '', '-', '+');
const castableText = fc.oneof(
  fc
    .tuple(
      ws,
      sign,
      fc.oneof(
        int8.map(String),
        fc.nat({ max: 40000 }).map(String),
        fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String),
      ),
      ws,
    )
    .map((p) => p.join('').replace(/^(\s*[+-]?)-/, '$1')),
  fc
    .tuple(
      ws,
      sign,
      fc.stringMatching(/^\d{0,20}$/),
      fc.constantFrom('', '.'),
      fc.stringMatching(/^\d{0,12}$/),
      fc.constantFrom('', 'e', 'E', 'e+', 'e-', 'e ', 'E-'),
      fc.constantFrom('', '0', '3', '17', '999', '1000', '1001'),
      ws,
    )
    .map((p) => p.join('')),
  fc.constantFrom(
    'NaN',
    'nan',
    ' Infinity ',
    '-inf',
    '+inf',
    'infinity',
    '1_000',
    '0x10',
    '1e3',
    '١٢',
    '.',
    '-',
    '+',
    '',
    ' ',
    '5.',
    '.5',
    '- 5',
    '1.2.3',
    '00012',
    '-0',
  ),
  fc
    .tuple(
      ws,
      fc.constantFrom(
        't',
        'tr',
        'true',
        'TRUE',
        'True',
        'yes',
        'Y',
        'n',
        'no',
        'NO',
        'on',
        'ON',
        'off',
        'of',
        'o',
        '1',
        '0',
        '10',
        'truex',
        'f',
        'fa',
        'false',
        'FALSE',
        'Off',
        'yess',
        'ye',
      ),
      ws,
    )
    .map((p) => p.join('')),
  fc
    .tuple(
      ws,
      fc.oneof(
        fc.integer({ min: 0, max: 10000 }).map((y) => pad(y, 4)),
        fc.integer({ min: 0, max: 6000000 }).map(String),
      ),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.boolean(),
      ws,
    )
    .map(([a, y, m, d, padded, b]) => `${a}${y}-${padded ? pad(m) : m}-${padded ? pad(d) : d}${b}`),
  fc.constantFrom(
    '2024-02-29',
    '2023-02-29',
    '1900-02-29',
    '2000-02-29',
    '0000-01-01',
    '5874897-12-31',
    '5874898-01-01',
    '2024-01-02 BC',
    'Jan 2 2024',
    '20240102',
    '2024-01-02 10:00',
    'epoch',
    '2024/01/02',
    '024-01-02',
    '02024-01-02',
  ),
  text,
);

const TEXT_OF: Record<T, fc.Arbitrary<string>> = {
  int2: int2.map(String),
  int4: int4.map(String),
  int8: int8.map(String),
  numeric,
  float4: float4.map(floatText),
  float8: float8.map(floatText),
  text,
  varchar: text,
  bpchar,
  bool: fc.boolean().map(String),
  date: dateText,
  time: timeText,
  timestamp: timestampText,
  timestamptz: timestamptzText,
  uuid: fc.uuid(),
};

// ---------------------------------------------------------------------------------------------
// Cases: an expression over input columns, and the inputs' values

interface Input {
  readonly type: T;
  /** PostgreSQL input text, or null for NULL. */
  readonly text: string | null;
  /** Whether the column is declared nullable (always, when the value is NULL). */
  readonly nullable: boolean;
}

/** A value of `type` (NULL one time in `nullOneIn`), in a column declared nullable or not. */
function input(type: T, values: fc.Arbitrary<string> = TEXT_OF[type], nullOneIn = 8): fc.Arbitrary<Input> {
  return fc
    .tuple(fc.option(values, { nil: null, freq: nullOneIn - 1 }), fc.boolean())
    .map(([text, declaredNullable]) => ({
      type,
      text,
      nullable: text === null || declaredNullable,
    }));
}

interface Case {
  readonly inputs: readonly Input[];
  readonly build: (...columns: Expr[]) => Expr;
  readonly label: string;
}

function columnExpr(slot: number, i: Input): Expr {
  return {
    node: {
      kind: 'column',
      table: TABLE,
      column: columnName(slot, i.type),
      type: i.type,
      nullable: i.nullable,
    },
  } as Expr;
}

const typeNames: Record<string, ColumnType> = {
  smallint: 'int2',
  integer: 'int4',
  bigint: 'int8',
  numeric: 'numeric',
  real: 'float4',
  'double precision': 'float8',
  text: 'text',
  'character varying': 'varchar',
  character: 'bpchar',
  boolean: 'bool',
  date: 'date',
  'time without time zone': 'time',
  'timestamp without time zone': 'timestamp',
  'timestamp with time zone': 'timestamptz',
  uuid: 'uuid',
};

const NUMERIC_SPECIAL = new Set(['NaN', 'Infinity', '-Infinity']);
const ISO_DATE = /^[ \t\n\r\v\f]*(\d{4}|[1-9]\d{4,6})-(\d{1,2})-(\d{1,2})[ \t\n\r\v\f]*$/;

/** A difference README.md documents, or null when the results must be equal. */
function documentedDifference(
  node: ExprNode,
  ours: Value,
  pgValue: Value,
  pgError: string | null,
  row: Record<string, Value>,
): string | null {
  if (ours !== null) return null;
  if (pgError !== null) return 'PostgreSQL raises an error, the view holds NULL';
  if (node.type === 'numeric' && typeof pgValue === 'string' && NUMERIC_SPECIAL.has(pgValue))
    return 'numeric NaN/Infinity are not modelled';
  if (node.kind === 'call' && node.fn === 'cast' && node.type === 'date') {
    const arg = node.args[0]!;
    const input = arg.kind === 'column' ? row[arg.column] : arg.kind === 'literal' ? arg.value : null;
    if (typeof input === 'string' && !ISO_DATE.test(input)) return 'text → date reads ISO dates only';
  }
  return null;
}

const same = (a: Value, b: Value): boolean => Object.is(a, b);

let db: pg.Client;

/** Evaluate every case with evaluate.ts and on PostgreSQL; throw listing the differences. */
async function check(cases: readonly Case[]): Promise<void> {
  const built = cases.map((c, id) => ({
    ...c,
    id,
    expr: c.build(...c.inputs.map((i, slot) => columnExpr(slot, i))),
  }));

  // Every expression passes validation.
  const fields: Record<string, Expr> = {};
  for (const b of built) fields[`e${b.id}`] = b.expr;
  createRegistry({
    source: source.postgres(),
    views: { v: view(t).select((r) => ({ id: r.id, ...fields })) },
  });

  // The rows, as PostgreSQL prints them back, decoded as the service decodes them.
  await db.query('TRUNCATE pg_temp.t');
  const inserts = built.map((b) => {
    const names = ['id', ...b.inputs.map((i, slot) => columnName(slot, i.type))];
    const values = [
      String(b.id),
      ...b.inputs.map((i) => (i.text === null ? 'NULL' : `${quote(i.text)}::${i.type}`)),
    ];
    return `INSERT INTO pg_temp.t (${names.map((n) => `"${n}"`).join(', ')}) VALUES (${values.join(', ')})`;
  });
  await db.query(inserts.join(';\n'));
  const stored = await db.query<Record<string, string | null>>('SELECT * FROM pg_temp.t ORDER BY id');
  const rows = stored.rows.map((r) => {
    const row: Record<string, Value> = {};
    for (const [name, text] of Object.entries(r)) {
      const type = name === 'id' ? 'int4' : (name.split('_')[1] as ColumnType);
      row[name] = text === null ? null : decodePgText(type, text);
    }
    return row;
  });

  const queries = built.map((b) => {
    const sql = exprToSql(b.expr.node);
    // format('%s') prints with the type's output function (a cast to text would trim bpchar); NULL is told apart.
    return `SELECT pg_typeof(${sql})::text, CASE WHEN (${sql}) IS NULL THEN NULL ELSE format('%s', ${sql}) END FROM pg_temp.t WHERE id = ${b.id}`;
  });
  const results = await db.query<{ typ: string | null; val: string | null; err: string | null }>(
    'SELECT r.typ, r.val, r.err FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n), LATERAL pg_temp.try_eval(u.q) AS r ORDER BY u.n',
    [queries],
  );

  const failures: string[] = [];
  built.forEach((b, k) => {
    const node = b.expr.node;
    const row = rows[k]!;
    const { typ, val, err } = results.rows[k]!;
    let ours: Value;
    try {
      ours = evaluate(node, row);
    } catch (error) {
      ours = `threw ${String(error)}`;
    }
    const pgValue = val === null ? null : decodePgText(node.type, val);
    const problems: string[] = [];
    const documented = documentedDifference(node, ours, pgValue, err, row);
    if (err !== null && !documented)
      problems.push(`PostgreSQL raised '${err}', the view has ${JSON.stringify(ours)}`);
    if (err !== null && !node.nullable)
      problems.push('PostgreSQL raised an error on an expression typed non-null');
    if (err === null && typeNames[typ ?? ''] !== node.type)
      problems.push(`PostgreSQL's type is ${typ}, the expression's ${node.type}`);
    if (err === null && !documented && !same(ours, pgValue))
      problems.push(
        `the view has ${String(ours)} (${typeof ours}), PostgreSQL ${String(pgValue)} (text ${JSON.stringify(val)})`,
      );
    if (!node.nullable && (ours === null || (err === null && pgValue === null)))
      problems.push('NULL from an expression typed non-null');
    if (problems.length) {
      const used = b.inputs.map(
        (i, slot) =>
          `${columnName(slot, i.type)}=${JSON.stringify(row[columnName(slot, i.type)])}${i.nullable ? '' : ' (not null)'}`,
      );
      failures.push(
        `${b.label}: ${exprToSql(node)}\n    row: ${used.join(', ')}\n    ${problems.join('; ')}`,
      );
    }
  });
  if (failures.length)
    throw new Error(
      `${failures.length} of ${built.length} cases differ:\n${failures.slice(0, 8).join('\n')}`,
    );
}

/** Hundreds of cases per function, in batches of `batch` (one round trip each). */
async function property(cases: fc.Arbitrary<Case>, runs = 4, batch = 125): Promise<void> {
  runs *= Number(process.env['EXPR_RUNS'] ?? 1); // more, to hunt for differences locally
  await fc.assert(
    fc.asyncProperty(fc.array(cases, { minLength: batch, maxLength: batch }), (cs) => check(cs)),
    // No shrinking: check() already names each differing case.
    { numRuns: runs, endOnFailure: true },
  );
}

const caseOf = (
  label: string,
  inputs: fc.Arbitrary<Input>[],
  build: (...columns: Expr[]) => Expr,
): fc.Arbitrary<Case> => fc.tuple(...inputs).map((is) => printable({ label, inputs: is, build }));

/** fast-check prints a case as its label and inputs. */
function printable(c: Case): Case {
  return Object.assign(c, {
    [fc.toStringMethod]: () => `${c.label} ${JSON.stringify(c.inputs.map((i) => i.text))}`,
  });
}

const pick = <X>(xs: readonly X[]): fc.Arbitrary<X> => fc.constantFrom(...xs);

// ---------------------------------------------------------------------------------------------

describe('scalar functions equal PostgreSQL, value for value', () => {
  beforeAll(async () => {
    db = await connect(inject('databaseUrl'));
    await db.query('SET extra_float_digits = 1'); // PostgreSQL's default
    const definitions = TYPES.flatMap((type) =>
      Array.from({ length: SLOTS }, (_, slot) => `"${columnName(slot, type)}" ${type}`),
    );
    await db.query(`CREATE TEMP TABLE t (id int4 PRIMARY KEY, ${definitions.join(', ')})`);
    await db.query(`
      CREATE FUNCTION pg_temp.try_eval(q text, OUT typ text, OUT val text, OUT err text) LANGUAGE plpgsql AS $$
      BEGIN
        EXECUTE q INTO typ, val;
      EXCEPTION WHEN OTHERS THEN
        err := SQLERRM;
      END $$`);
  });
  afterAll(() => db?.end());

  const INTEGERS = ['int2', 'int4', 'int8'] as const;
  const EXACT = [...INTEGERS, 'numeric'] as const;
  const NUMBERS = [...EXACT, 'float4', 'float8'] as const;
  const TEXTS = ['text', 'varchar', 'bpchar'] as const;

  it('mod: integers and numerics, the dividend’s sign, NULL for zero', async () => {
    const divisor = (type: T): fc.Arbitrary<string> =>
      fc.oneof(
        TEXT_OF[type],
        fc.constantFrom('0', '-1', '1', '7', '-3'),
        type === 'numeric' ? fc.constantFrom('0.000', '0.3', '-2.50') : fc.constant('0'),
      );
    await property(
      fc.oneof(
        fc
          .tuple(pick(EXACT), pick(EXACT))
          .chain(([a, b]) =>
            caseOf(`mod(${a}, ${b})`, [input(a), input(b, divisor(b))], (x, y) =>
              mod(x as Expr<'int4'>, y as Expr<'int4'>),
            ),
          ),
        fc
          .tuple(pick(EXACT), fc.constantFrom(7, -3, 1, 2.5, 0, 3000000000))
          .chain(([a, k]) => caseOf(`mod(${a}, ${k})`, [input(a)], (x) => mod(x as Expr<'int4'>, k))),
        fc
          .tuple(pick(EXACT), fc.constantFrom('7', '0', '-2'))
          .chain(([a, k]) => caseOf(`mod(${a}, '${k}')`, [input(a)], (x) => mod(x as Expr<'int4'>, k))),
      ),
    );
  });

  it('between: numbers (floats included), text by code point, bpchar, dates and timestamps; literals', async () => {
    const families: (readonly T[])[] = [
      NUMBERS,
      NUMBERS,
      TEXTS,
      ['date'],
      ['timestamp'],
      ['timestamptz'],
      ['bool'],
      ['uuid'],
      ['time'],
    ];
    const literalFor = (type: T): fc.Arbitrary<Literal> =>
      NUMBERS.includes(type as never)
        ? fc.oneof(
            fc.integer({ min: -100, max: 100 }),
            fc.constantFrom(0.5, -2.5, 0.1),
            fc.constantFrom('7', '-3'),
          )
        : type === 'timestamptz'
          ? fc.constantFrom('2024-01-01', '2024-03-31 01:00:00+00', '2000-02-29T12:00:00.5Z')
          : type === 'bool'
            ? fc.boolean()
            : TEXTS.includes(type as never)
              ? text
              : fc.constant(null as never);
    await property(
      fc.oneof(
        pick(families).chain((family) =>
          fc
            .tuple(pick(family), pick(family), pick(family))
            .chain(([a, b, c]) =>
              caseOf(`between(${a}, ${b}, ${c})`, [input(a), input(b), input(c)], (x, lo, hi) =>
                between(x, lo!, hi!),
              ),
            ),
        ),
        pick([...NUMBERS, ...TEXTS, 'timestamptz', 'bool'] as const).chain((a) =>
          fc
            .tuple(literalFor(a), literalFor(a))
            .chain(([lo, hi]) => caseOf(`between(${a}, literals)`, [input(a)], (x) => between(x, lo, hi))),
        ),
      ),
    );
  });

  it('like and notLike: %, _ on code points, escapes, patterns from columns (a trailing escape included)', async () => {
    const patternOf = (s: string): fc.Arbitrary<string> =>
      fc
        .array(fc.constantFrom('keep', 'keep', 'keep', 'one', 'any', 'escape', 'drop', 'wild'), {
          minLength: [...s].length,
          maxLength: [...s].length,
        })
        .map((ops) =>
          [...s]
            .map(
              (c, i) =>
                ({ keep: c, one: '_', any: '%', escape: `\\${c}`, drop: '', wild: `%${c}` })[
                  ops[i] as 'keep'
                ],
            )
            .join(''),
        );
    const literalPattern = fc
      .oneof(text, text.chain(patternOf))
      .filter((p) => !/(^|[^\\])(\\\\)*\\$/.test(p));
    await property(
      fc.oneof(
        fc.tuple(pick(TEXTS), text).chain(([a, s]) =>
          fc
            .tuple(
              input(a, fc.oneof(fc.constant(s), text)),
              input('text', fc.oneof(patternOf(s), text, fc.constant(`${s}\\`))),
            )
            .chain((is) =>
              fc.boolean().map((negate) =>
                printable({
                  label: `${negate ? 'notLike' : 'like'}(${a}, column)`,
                  inputs: is,
                  build: (x: Expr, p: Expr) =>
                    (negate ? notLike : like)(x as Expr<'text'>, p as Expr<'text'>),
                }),
              ),
            ),
        ),
        fc.tuple(pick(TEXTS), text).chain(([a, s]) =>
          fc
            .tuple(
              fc.oneof(patternOf(s), literalPattern).filter((p) => !/(^|[^\\])(\\\\)*\\$/.test(p)),
              fc.boolean(),
            )
            .chain(([pattern, negate]) =>
              caseOf(
                `${negate ? 'notLike' : 'like'}(${a}, '${pattern}')`,
                [input(a, fc.oneof(fc.constant(s), text))],
                (x) => (negate ? notLike : like)(x as Expr<'text'>, pattern),
              ),
            ),
        ),
        fc
          .tuple(pick(['varchar', 'text'] as const), text)
          .chain(([p, s]) =>
            caseOf(`like(literal, ${p})`, [input(p, patternOf(s))], (x) => like(s, x as Expr<'text'>)),
          ),
      ),
    );
  });

  it('caseWhen: the branches’ common type, literals typed by it, NULL without otherwise', async () => {
    const families: (readonly T[])[] = [NUMBERS, NUMBERS, TEXTS, ['timestamptz'], ['date']];
    const literalFor = (family: readonly T[]): fc.Arbitrary<Literal> =>
      family === TEXTS
        ? text
        : family.includes('int4')
          ? fc.oneof(
              fc.integer({ min: -1000, max: 1000 }),
              fc.constantFrom(2.5, -0.125, 3000000000),
              fc.constantFrom('7', '-12'),
            )
          : family.includes('date')
            ? fc.constantFrom('2024-02-29', '1999-12-31')
            : fc.constantFrom('2024-01-01', '2024-03-31 01:00:00.5+00');
    const branch = (family: readonly T[]) =>
      fc.oneof(
        { weight: 3, arbitrary: pick(family).map((type) => ({ kind: 'column' as const, type })) },
        { weight: 1, arbitrary: literalFor(family).map((value) => ({ kind: 'literal' as const, value })) },
      );
    await property(
      pick(families).chain((family) =>
        fc
          .tuple(
            fc.array(branch(family), { minLength: 1, maxLength: 4 }),
            fc.option(branch(family), { nil: undefined }),
          )
          .chain(([branches, otherwise]) => {
            const all = otherwise ? [...branches, otherwise] : branches;
            const inputs: fc.Arbitrary<Input>[] = [];
            for (const b of branches) {
              inputs.push(input('bool', fc.boolean().map(String), 4));
              if (b.kind === 'column') inputs.push(input(b.type));
            }
            if (otherwise?.kind === 'column') inputs.push(input(otherwise.type));
            const label = `caseWhen(${all.map((b) => (b.kind === 'column' ? b.type : JSON.stringify(b.value))).join(', ')}${otherwise ? ' otherwise' : ''})`;
            return caseOf(label, inputs, (...cols) => {
              let next = 0;
              const value = (b: (typeof all)[number]): Expr | Literal =>
                b.kind === 'column' ? cols[next++]! : b.value;
              const conditionOf = (): Expr<'bool'> => cols[next++] as Expr<'bool'>;
              const [first, ...rest] = branches;
              let c = caseWhen(conditionOf(), value(first!) as never) as unknown as {
                when: (c: Expr, v: unknown) => unknown;
                otherwise: (v: unknown) => Expr;
                node: ExprNode;
              };
              for (const b of rest) {
                const condition = conditionOf();
                c = c.when(condition, value(b)) as typeof c;
              }
              return otherwise ? c.otherwise(value(otherwise)) : (c as unknown as Expr);
            });
          }),
      ),
    );
  });

  it('length: code points; bpchar without trailing spaces', async () => {
    await property(
      pick(TEXTS).chain((a) => caseOf(`length(${a})`, [input(a)], (x) => length(x as Expr<'text'>))),
      3,
    );
  });

  it('abs: every number type; the smallest integer is NULL', async () => {
    await property(
      pick(NUMBERS).chain((a) => caseOf(`abs(${a})`, [input(a)], (x) => abs(x as Expr<'int4'>))),
      3,
    );
  });

  it('round: numeric half away from zero with digits, floats and integers half to even', async () => {
    await property(
      fc.oneof(
        pick(NUMBERS).chain((a) => caseOf(`round(${a})`, [input(a)], (x) => round(x as Expr<'int4'>))),
        fc
          .tuple(pick(EXACT), fc.integer({ min: -6, max: 14 }))
          .chain(([a, d]) => caseOf(`round(${a}, ${d})`, [input(a)], (x) => round(x as Expr<'int4'>, d))),
      ),
    );
  });

  it('cast: numbers, text (both ways), bool, dates and timestamps', async () => {
    const pairs = CAST_TARGETS.flatMap((to) =>
      TYPES.filter((from) => castProblem(from, to) === null).map((from) => [from, to] as const),
    );
    await property(
      pick(pairs).chain(([from, to]) =>
        caseOf(
          `cast(${from}, ${to})`,
          [input(from, TEXTS.includes(from as never) && to !== 'text' ? castableText : TEXT_OF[from])],
          (x) => cast(x as never, to as CastTarget),
        ),
      ),
      6,
    );
  });

  it('dateTrunc: every unit, timestamp, timestamptz (in UTC) and date, BC and infinity included', async () => {
    await property(
      fc
        .tuple(pick(TRUNC_UNITS), pick(['timestamp', 'timestamptz', 'date'] as const))
        .chain(([unit, a]) =>
          caseOf(`dateTrunc(${unit}, ${a})`, [input(a)], (x) => dateTrunc(unit, x as Expr<'timestamp'>)),
        ),
    );
  });
});
