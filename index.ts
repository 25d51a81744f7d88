/**
 * cdc-views: the public API for `views.config.ts`.
 */
export {
  defineConfig,
  table,
  view,
  eq,
  ne,
  lt,
  lte,
  gt,
  gte,
  and,
  or,
  not,
  isNull,
  isNotNull,
  oneOf,
  add,
  sub,
  mul,
  div,
  coalesce,
  lower,
  upper,
  concat,
  count,
  sum,
  avg,
  min,
  max,
} from './views/define.ts';
export type {
  Config,
  ViewDef,
  TableDef,
  InferRow,
  Expr,
  Aggregate,
  ColumnSpec,
  JsonValue,
} from './views/define.ts';
export { source } from './ingest/source-options.ts';
export type { SourceOptions, PostgresSourceOptions, KafkaSourceOptions } from './ingest/source-options.ts';
