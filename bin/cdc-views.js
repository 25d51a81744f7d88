#!/usr/bin/env node
// The CLI is TypeScript, and so are users' views.config.ts files: load both through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../cli/cdc-views.ts');
