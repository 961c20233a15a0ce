#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so a checkout works after `npm ci` with no build step.
// First it checks the Node.js version, in code any Node.js can run (no top-level await, see
// builder/host-check.mjs): tsx and the dependencies fail on an old one with a stack trace, and Debian 11 and
// Ubuntu 22.04 ship Node 12.
import { formatCheck, nodeCheck, toolsCheck } from '../builder/host-check.mjs';

const node = nodeCheck();
if (node.ok) {
  import('tsx/esm/api').then(({ register }) => {
    register();
    return import('../builder/cli.ts');
  });
} else if (process.argv[2] === 'doctor') {
  // What doctor can tell without a supported Node.js: the Node.js problem and the missing tools.
  process.stdout.write(`${formatCheck(node)}\n${formatCheck(toolsCheck())}\n`);
  process.stdout.write('(the other checks, and releasing what a killed build left, need a supported Node.js)\n');
  process.exitCode = 1;
} else {
  process.stderr.write(`error: ${node.detail}\n`);
  process.exitCode = 1;
}
