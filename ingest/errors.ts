/**
 * The base error of the service. It sits in the lowest layer so every layer above can extend it
 * while imports still point one way (ingest ← views ← schema ← api).
 *
 * Messages say what was expected, what was found, and where: "decode(debezium): expected
 * envelope.op to be one of c|u|d|r|t|m, but found 'x' (topic app.public.orders, partition 0, offset 42)".
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DECODE_FAILED'
  | 'SOURCE_SCHEMA'
  | 'REPLICATION'
  | 'REDIS_APPLY'
  | 'STATE_LOST'
  | 'VIEW_UNAVAILABLE'
  | 'KAFKA';

export class ServiceError extends Error {
  readonly code: ErrorCode;
  /** Whether retrying the same operation may succeed (kafkajs' convention). */
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** A record that cannot be turned into a Change: parked in the dead-letter stream, never retried. */
export class DecodeError extends ServiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DECODE_FAILED', message, { ...options, retriable: false });
    this.name = 'DecodeError';
  }
}

/** The source database does not match what the config declares (missing column, no primary key, …). */
export class SourceSchemaError extends ServiceError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('SOURCE_SCHEMA', `The source database does not fit the declared tables:\n${problems.map((p) => `  ✖ ${p}`).join('\n')}`);
    this.name = 'SourceSchemaError';
    this.problems = problems;
  }
}

export class ReplicationError extends ServiceError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super('REPLICATION', message, options);
    this.name = 'ReplicationError';
  }
}
