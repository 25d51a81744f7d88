/**
 * Errors of the views layer. Built on the base error of the lowest layer (ingest/errors.ts).
 */
import { ServiceError } from '../core/errors.ts';

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
  /** The change it concerns, when one (it goes to the dead-letter stream). */
  change: unknown = null;
  constructor(message: string) {
    super('DECODE_FAILED', message, { retriable: false });
    this.name = 'PlanError';
  }
}

/**
 * A view cannot be served as complete right now: it is being built, stopped by a schema change,
 * held in another definition by another version of the service, or in the middle of a
 * transaction applied in parts. The message is meant for API clients.
 */
export class ViewUnavailableError extends ServiceError {
  readonly view: string;
  readonly state: 'missing' | 'definition' | 'building' | 'stopped' | 'busy';
  constructor(view: string, state: ViewUnavailableError['state'], message: string) {
    super('VIEW_UNAVAILABLE', message, { retriable: state !== 'stopped' });
    this.name = 'ViewUnavailableError';
    this.view = view;
    this.state = state;
  }
}

/** Redis does not hold what this writer last wrote there (restart without persistence, older dump, failover). */
export class StateLostError extends ServiceError {
  constructor(message: string) {
    super('STATE_LOST', message, { retriable: true });
    this.name = 'StateLostError';
  }
}
