import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');

/**
 * The device program as one ES module for Debian's Node 18 (bookworm) and 20 (trixie): everything it imports
 * is inlined, Node built-ins stay imports.
 */
export async function bundleDeviceProgram(): Promise<string> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'esm',
    write: false,
    legalComments: 'inline',
    // Bundled CommonJS dependencies (the QR code library) call require() for Node built-ins, which an ES
    // module does not have.
    banner: {
      js: "// simplex-pi device program, bundled from builder/device/ by the install-device stage.\nimport { createRequire as __simplexPiCreateRequire } from 'node:module';\nconst require = __simplexPiCreateRequire(import.meta.url);",
    },
  });
  return result.outputFiles[0]!.text;
}
