/**
 * Errors of the views layer. Built on the base error of the lowest layer (ingest/errors.ts).
 */
import { ServiceError } from '../ingest/errors.ts';

/** One problem in a config: where it is, and what is wrong. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** An invalid config: every problem at once, zod style. */
export class ConfigError extends ServiceError {
  readonly issues: readonly Issue[];
  constructor(issues: readonly Issue[]) {
    super('CONFIG_INVALID', `Invalid config (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${formatIssues(issues)}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `  ✖ ${i.message}\n    → at ${i.path}`).join('\n');
}

/** Writing a batch to Redis failed; the batch was not applied (the script is atomic) and can be retried. */
export class RedisApplyError extends ServiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('REDIS_APPLY', message, { ...options, retriable: true });
    this.name = 'RedisApplyError';
  }
}

/** A change the views cannot apply (e.g. an UPDATE without the old row for an aggregate). Parked, counted. */
export class PlanError extends ServiceError {
  constructor(message: string) {
    super('DECODE_FAILED', message, { retriable: false });
    this.name = 'PlanError';
  }
}
