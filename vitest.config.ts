import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Node loads graphql's CommonJS build for graphql-yoga; Vite would pick its ESM build for our code.
    // Two copies of graphql refuse each other's schemas, so ours must be the same CommonJS one.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share one PostgreSQL and one Redis; each file isolates itself with its own
    // database, slot and key prefix, so files may run in parallel.
    maxWorkers: 2,
    // global.gc: memory figures measure what is retained, not garbage not yet collected.
    execArgv: ['--expose-gc'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
  },
});
