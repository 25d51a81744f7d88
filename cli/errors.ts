/**
 * Errors of the CLI's own commands: each carries the exit code it ends the process with and a
 * message that says what was wrong (printed without a stack).
 *
 *   2  bad usage: a missing or malformed option, a URL that is not a database URL
 *   1  a problem the user must fix: an unreachable database, an unknown schema or table, a file
 *      that would be overwritten
 */
export class CliError extends Error {
  readonly exitCode: 1 | 2;

  constructor(exitCode: 1 | 2, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Bad usage: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(2, message);
}
