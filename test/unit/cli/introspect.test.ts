/**
 * introspect without a database: the type mappings (PostgreSQL rows as pg_type describes them,
 * MySQL/MariaDB rows as information_schema does), catalog reading through a fake query function,
 * and the generated module read back and compared.
 */
import { describe, expect, it } from 'vitest';
import { CatalogError, mysqlColumnType, pgColumnType, readMysqlCatalog, readPostgresCatalog, type CatalogTable, type Query } from '../../../cli/catalog.ts';
import { camelCase, diffTables, parseTablesModule, renderTablesModule, type ModuleSource } from '../../../cli/introspect.ts';

const SOURCE: ModuleSource = { dialect: 'postgres', label: 'postgres://db:5432/app', schema: 'public', out: 'tables.ts' };

/** A query function answering each statement by the first table it reads. */
function fakeQuery(answers: Record<string, object[]>): Query {
  return async <R extends object>(sql: string) => {
    const hit = Object.keys(answers).find((k) => sql.includes(k));
    if (!hit) throw new Error(`unexpected query ${sql}`);
    return answers[hit] as R[];
  };
}

describe('pgColumnType', () => {
  it('maps the types cdc-views models to themselves, enums and text domains to text', () => {
    for (const t of ['bool', 'int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'text', 'varchar', 'bpchar', 'uuid', 'date', 'time', 'timestamp', 'timestamptz', 'json', 'jsonb', 'bytea']) {
      expect(pgColumnType({ typname: t, typtype: 'b', formatted: t })).toEqual({ type: t });
    }
    expect(pgColumnType({ typname: 'mood', typtype: 'e', formatted: 'mood' })).toEqual({ type: 'text', note: 'enum mood' });
    expect(pgColumnType({ typname: 'email', typtype: 'd', formatted: 'email', base_typname: 'varchar' })).toEqual({ type: 'text', note: 'domain email over varchar' });
  });

  it('leaves out the others, saying how a PostgreSQL source would deliver them', () => {
    expect(pgColumnType({ typname: 'point', typtype: 'b', formatted: 'point' })).toEqual({
      type: null,
      note: "cdc-views has no type for point; a PostgreSQL source delivers it as text: declare it 'text' to read it so",
    });
    expect(pgColumnType({ typname: '_int4', typtype: 'b', formatted: 'integer[]' }).type).toBeNull();
    expect(pgColumnType({ typname: 'posint', typtype: 'd', formatted: 'posint', base_typname: 'int4' }).note).toMatch(/^domain posint over int4: /);
    expect(pgColumnType({ typname: 'interval', typtype: 'b', formatted: 'interval' }).type).toBeNull();
  });
});

describe('mysqlColumnType', () => {
  const cases: [dataType: string, columnType: string, expected: string | null][] = [
    ['tinyint', 'tinyint(1)', 'int2'],
    ['tinyint', 'tinyint(3) unsigned', 'int2'],
    ['smallint', 'smallint(6)', 'int2'],
    ['smallint', 'smallint(5) unsigned', 'int4'],
    ['mediumint', 'mediumint(9)', 'int4'],
    ['int', 'int(11)', 'int4'],
    ['int', 'int(10) unsigned', 'int8'],
    ['bigint', 'bigint(20)', 'int8'],
    ['bigint', 'bigint(20) unsigned', 'numeric'],
    ['decimal', 'decimal(12,2)', 'numeric'],
    ['float', 'float', 'float4'],
    ['double', 'double', 'float8'],
    ['char', 'char(3)', 'text'],
    ['varchar', 'varchar(100)', 'text'],
    ['longtext', 'longtext', 'text'],
    ['enum', "enum('a','b')", 'text'],
    ['set', "set('x','y')", 'text'],
    ['json', 'json', 'json'],
    ['uuid', 'uuid', 'uuid'],
    ['varbinary', 'varbinary(10)', 'bytea'],
    ['blob', 'blob', 'bytea'],
    ['date', 'date', 'date'],
    ['time', 'time(3)', 'time'],
    ['datetime', 'datetime(6)', 'timestamp'],
    ['timestamp', 'timestamp(6)', 'timestamptz'],
    ['year', 'year(4)', 'int4'],
    ['bit', 'bit(1)', 'bool'],
    ['bit', 'bit(8)', null],
    ['point', 'point', null],
    ['geometry', 'geometry', null],
  ];
  it.each(cases)('%s (%s) → %s, as Debezium decodes it', (dataType, columnType, expected) => {
    expect(mysqlColumnType({ data_type: dataType, column_type: columnType }).type).toBe(expected);
  });
});

describe('reading a catalog', () => {
  it('MySQL/MariaDB: columns in order, nullability, composite keys, keyless tables', async () => {
    const query = fakeQuery({
      SCHEMATA: [{ name: 'shop' }],
      'information_schema.COLUMNS': [
        { table_name: 'events', column_name: 'at', is_nullable: 'NO', data_type: 'timestamp', column_type: 'timestamp(6)' },
        { table_name: 'order_items', column_name: 'order_id', is_nullable: 'NO', data_type: 'int', column_type: 'int(11)' },
        { table_name: 'order_items', column_name: 'line_no', is_nullable: 'NO', data_type: 'int', column_type: 'int(11)' },
        { table_name: 'order_items', column_name: 'note', is_nullable: 'YES', data_type: 'varchar', column_type: 'varchar(20)' },
      ],
      KEY_COLUMN_USAGE: [
        { table_name: 'order_items', column_name: 'order_id' },
        { table_name: 'order_items', column_name: 'line_no' },
      ],
    });
    expect(await readMysqlCatalog(query, { schema: 'shop' })).toEqual([
      { schema: 'shop', table: 'events', key: [], columns: [{ name: 'at', dbType: 'timestamp(6)', type: 'timestamptz', nullable: false }] },
      {
        schema: 'shop',
        table: 'order_items',
        key: ['order_id', 'line_no'],
        columns: [
          { name: 'order_id', dbType: 'int(11)', type: 'int4', nullable: false },
          { name: 'line_no', dbType: 'int(11)', type: 'int4', nullable: false },
          { name: 'note', dbType: 'varchar(20)', type: 'text', nullable: true },
        ],
      },
    ]);
    await expect(readMysqlCatalog(query, { schema: 'shop', tables: ['orders', 'events'] })).rejects.toThrow(
      new CatalogError("Expected tables of database shop (events, order_items), but found 'orders'"),
    );
    await expect(readMysqlCatalog(query, { schema: 'shp' })).rejects.toThrow(new CatalogError("Expected a database of the server (shop), but found 'shp'"));
  });

  it('PostgreSQL: an unknown schema names the ones there are', async () => {
    const query = fakeQuery({ pg_namespace: [{ nspname: 'app' }, { nspname: 'public' }] });
    await expect(readPostgresCatalog(query, { schema: 'pubic' })).rejects.toThrow(new CatalogError("Expected a schema of the database (app, public), but found 'pubic'"));
  });
});

const ORDERS: CatalogTable = {
  schema: 'public',
  table: 'order_items',
  key: ['order_id', 'line_no'],
  columns: [
    { name: 'order_id', dbType: 'integer', type: 'int4', nullable: false },
    { name: 'line_no', dbType: 'integer', type: 'int4', nullable: false },
    { name: 'price', dbType: 'numeric(10,2)', type: 'numeric', nullable: true },
    { name: 'where', dbType: 'point', type: null, nullable: true, note: 'cdc-views has no type for point' },
    { name: 'Odd Name', dbType: 'text', type: 'text', nullable: false },
  ],
};
const EVENTS: CatalogTable = { schema: 'public', table: 'class', key: [], columns: [{ name: 'id', dbType: 'bigint', type: 'int8', nullable: false }] };

describe('the generated module', () => {
  it('declares each table under a camelCase export, with types, nullability, keys and what was left out', () => {
    const text = renderTablesModule([ORDERS, EVENTS], SOURCE);
    expect(text).toContain(`import { table } from 'cdc-views';

export const orderItems = table(
  'public.order_items',
  {
    order_id: 'int4',
    line_no: 'int4',
    price: 'numeric?', // numeric(10,2)
    // left out: where point (cdc-views has no type for point)
    'Odd Name': 'text',
  },
  { key: ['order_id', 'line_no'] },
);

// public.class has no primary key in the database: set key to the NOT NULL column(s) that identify a row,
// and add that primary key to the table (cdc-views tells rows apart by it; it checks the table at start).
export const classTable = table(
  'public.class',
  {
    id: 'int8',
  },
  { key: [] },
);
`);
    expect(text).toContain('npx cdc-views introspect --database "$DATABASE_URL" --out tables.ts');
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}/); // no timestamp: the same database gives the same file
  });

  it('reads back what it declares, and keeps a key chosen by hand for a table the database gives none', () => {
    const text = renderTablesModule([ORDERS, EVENTS], SOURCE);
    const declared = parseTablesModule(text);
    expect(declared.map((t) => [t.exportName, t.name, Object.fromEntries(t.columns), t.key])).toEqual([
      ['orderItems', 'public.order_items', { order_id: 'int4', line_no: 'int4', price: 'numeric?', 'Odd Name': 'text' }, ['order_id', 'line_no']],
      ['classTable', 'public.class', { id: 'int8' }, []],
    ]);
    const chosen = text.replace('{ key: [] }', "{ key: 'id' }");
    const again = renderTablesModule([ORDERS, EVENTS], SOURCE, parseTablesModule(chosen));
    expect(again).toBe(chosen);
    expect(diffTables(parseTablesModule(chosen), parseTablesModule(again))).toEqual([]);
  });

  it('lists every difference: tables and columns added and removed, types, nullability, keys', () => {
    const before = parseTablesModule(renderTablesModule([ORDERS, EVENTS], SOURCE));
    const changed: CatalogTable = {
      ...ORDERS,
      key: ['order_id'],
      columns: [
        { name: 'order_id', dbType: 'integer', type: 'int4', nullable: false },
        { name: 'line_no', dbType: 'bigint', type: 'int8', nullable: true },
        { name: 'price', dbType: 'numeric(10,2)', type: 'numeric', nullable: false },
        { name: 'note', dbType: 'text', type: 'text', nullable: true },
      ],
    };
    const added: CatalogTable = { schema: 'public', table: 'refunds', key: ['id'], columns: [{ name: 'id', dbType: 'integer', type: 'int4', nullable: false }] };
    const after = parseTablesModule(renderTablesModule([changed, added], SOURCE));
    expect(diffTables(before, after)).toEqual([
      "~ public.order_items: column line_no 'int4' → 'int8?' (type, now nullable)",
      "~ public.order_items: column price 'numeric?' → 'numeric' (now NOT NULL)",
      "~ public.order_items: + column note 'text?'",
      "~ public.order_items: - column Odd Name (was 'text')",
      '~ public.order_items: key (order_id, line_no) → (order_id)',
      '+ table public.refunds (1 column, key (id))',
      '- table public.class',
    ]);
  });

  it('camelCase export names stay valid identifiers', () => {
    expect(camelCase('order_items')).toBe('orderItems');
    expect(camelCase('Order-Lines 2')).toBe('orderLines2');
    expect(camelCase('2024_sales')).toBe('t2024Sales');
    expect(camelCase('table')).toBe('tableTable');
    expect(camelCase('default')).toBe('defaultTable');
  });
});
