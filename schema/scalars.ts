/**
 * GraphQL scalars for exact values. Numbers that JSON cannot carry exactly (int8, numeric) travel
 * as strings, as PostGraphile does; timestamps as ISO 8601 text with their full precision.
 */
import { GraphQLBoolean, GraphQLError, GraphQLFloat, GraphQLInt, GraphQLScalarType, GraphQLString, Kind, type GraphQLOutputType } from 'graphql';
import type { ColumnType } from '../core/values.ts';

function stringScalar(name: string, description: string, pattern: RegExp, example: string): GraphQLScalarType {
  const check = (value: unknown): string => {
    const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : value;
    if (typeof text !== 'string' || !pattern.test(text)) {
      // A GraphQLError: a client's bad value (in variables too) reaches the client, not masked as internal.
      throw new GraphQLError(`${name} expected text like '${example}', but found ${JSON.stringify(String(value))}`, { extensions: { code: 'BAD_USER_INPUT' } });
    }
    return text;
  };
  return new GraphQLScalarType({
    name,
    description,
    serialize: check,
    parseValue: check,
    parseLiteral(ast) {
      if (ast.kind !== Kind.STRING && ast.kind !== Kind.INT && ast.kind !== Kind.FLOAT) {
        throw new GraphQLError(`${name} expected a string literal like "${example}"`, { extensions: { code: 'BAD_USER_INPUT' } });
      }
      return check(ast.value);
    },
  });
}

export const GraphQLBigInt = stringScalar(
  'BigInt',
  'A 64-bit integer, as a decimal string (JSON numbers lose digits beyond 2^53).',
  /^-?\d+$/,
  '9007199254740993',
);
export const GraphQLDecimal = stringScalar(
  'Decimal',
  'An exact decimal number, as a string with all its digits (e.g. "1234.50").',
  /^-?\d+(\.\d+)?$|^NaN$/,
  '1234.50',
);
export const GraphQLDateTime = stringScalar(
  'DateTime',
  'A point in time: ISO 8601 in UTC with up to microsecond precision (e.g. "2024-05-01T12:30:00.123456Z").',
  /^\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$|^-?infinity$/,
  '2024-05-01T12:30:00.123456Z',
);
export const GraphQLLocalDateTime = stringScalar(
  'LocalDateTime',
  'A date and time without a time zone, ISO 8601 (e.g. "2024-05-01T12:30:00.5").',
  /^\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$|^-?infinity$/,
  '2024-05-01T12:30:00.5',
);
export const GraphQLDate = stringScalar('Date', 'A calendar date, ISO 8601 (e.g. "2024-05-01").', /^\d{4,}-\d{2}-\d{2}$|^-?infinity$/, '2024-05-01');
export const GraphQLTime = stringScalar('Time', 'A time of day, ISO 8601 (e.g. "12:30:00.5").', /^\d{2}:\d{2}:\d{2}(\.\d+)?$/, '12:30:00');

export const GraphQLJSON = new GraphQLScalarType({
  name: 'JSON',
  description: 'A JSON value (from a json or jsonb column).',
  serialize: (value) => (typeof value === 'string' ? JSON.parse(value) : value),
  parseValue: (value) => JSON.stringify(value),
});

/** The GraphQL scalar of a column type. */
export function scalarFor(type: ColumnType): GraphQLOutputType & GraphQLScalarType {
  switch (type) {
    case 'bool':
      return GraphQLBoolean;
    case 'int2':
    case 'int4':
      return GraphQLInt;
    case 'int8':
      return GraphQLBigInt;
    case 'float4':
    case 'float8':
      return GraphQLFloat;
    case 'numeric':
      return GraphQLDecimal;
    case 'date':
      return GraphQLDate;
    case 'time':
      return GraphQLTime;
    case 'timestamp':
      return GraphQLLocalDateTime;
    case 'timestamptz':
      return GraphQLDateTime;
    case 'json':
    case 'jsonb':
      return GraphQLJSON;
    default:
      return GraphQLString;
  }
}
