#!/usr/bin/env -S node --max-semi-space-size=64
// A larger young generation: a write step's deltas and its Redis command die young instead of being
// copied into the old generation (≈ 15 % more events per CPU-second, docs/benchmarks.md).
// The CLI is TypeScript, and so are users' views.config.ts files: load both through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../cli/cdc-views.ts');
