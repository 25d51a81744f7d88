import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { currentSdl, SCHEMA_FILE } from '../../../scripts/print-schema.ts';

it('the committed schema/schema.graphql matches the schema generated from the example config (run npm run schema:print)', () => {
  expect(currentSdl()).toBe(readFileSync(SCHEMA_FILE, 'utf8'));
});
