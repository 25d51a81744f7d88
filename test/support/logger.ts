import pino from 'pino';

/** Service logs in tests: warnings and errors only (LOG_LEVEL to see more). */
export function quietLogger(): pino.Logger {
  return pino({ name: 'cdc-views-test', level: process.env['LOG_LEVEL'] ?? 'warn' });
}
