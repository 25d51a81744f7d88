/**
 * cdc-views: the public API for `views.config.ts`.
 */
export { defineConfig } from './views/config.ts';
export type { Config, RedisOptions, ApiOptions, AuthOptions, JwtOptions, ViewPermission, ClaimRef, CorsOptions, ApiLimits, MetricsOptions, DurabilityOptions } from './views/config.ts';
export {
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
  mod,
  between,
  like,
  notLike,
  caseWhen,
  length,
  abs,
  round,
  cast,
  dateTrunc,
  count,
  sum,
  avg,
  min,
  max,
  countDistinct,
  boolAnd,
  boolOr,
  asc,
  desc,
} from './views/define.ts';
export type {
  ViewDef,
  TableDef,
  InferRow,
  Expr,
  Aggregate,
  ColumnSpec,
  JsonValue,
  FieldSpec,
  Source,
  CaseExpr,
} from './views/define.ts';
export type { CastTarget, TruncUnit } from './views/functions.ts';
export { source } from './ingest/source-options.ts';
export type { SourceOptions, PostgresSourceOptions, KafkaSourceOptions } from './ingest/source-options.ts';
export { reaction, crossedAbove, crossedBelow, kinds, matches } from './views/reactions.ts';
export type { ReactionDef, ReactionChange, ReactionContext, ReactionOptions, ReactionKind, ReactionCondition, When } from './views/reactions.ts';
