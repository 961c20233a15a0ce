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
    banner: { js: '// simplex-pi device program, bundled from builder/device/ by the firstboot stage.' },
  });
  return result.outputFiles[0]!.text;
}
