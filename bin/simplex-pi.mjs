#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so a checkout works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../builder/cli.ts');
