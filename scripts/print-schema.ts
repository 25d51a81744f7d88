/**
 * `npm run schema:print`: write the GraphQL schema of the example config to schema/schema.graphql
 * (committed; test/unit/schema/schema-snapshot.test.ts fails when it drifts).
 * With `--check`, compare instead of writing and exit 1 on a difference.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import config from '../examples/shop/views.config.ts';
import { printViewSchema } from '../schema/build-schema.ts';
import { createRegistry } from '../views/registry.ts';

export const SCHEMA_FILE = new URL('../schema/schema.graphql', import.meta.url);

export function currentSdl(): string {
  return printViewSchema(createRegistry(config));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const sdl = currentSdl();
  if (process.argv.includes('--check')) {
    if (readFileSync(SCHEMA_FILE, 'utf8') !== sdl) {
      process.stderr.write('schema/schema.graphql is out of date: run npm run schema:print\n');
      process.exit(1);
    }
  } else {
    writeFileSync(SCHEMA_FILE, sdl);
    process.stdout.write(`wrote ${SCHEMA_FILE.pathname}\n`);
  }
}
