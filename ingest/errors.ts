/**
 * Errors of the ingest layer: input that cannot be decoded, a source database that does not fit the
 * declared tables, replication failures. The base class is the kernel's (core/errors.ts).
 */
import { ServiceError } from '../core/errors.ts';

export { ServiceError, type ErrorCode } from '../core/errors.ts';

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
