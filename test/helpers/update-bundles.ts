import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type KeyPair, defaultTrustedComment, formatSignature, signMessage } from '../../builder/signing/minisign.ts';
import { writeUpdateBundle } from '../../builder/update/write-bundle.ts';
import { buildStandin } from '../fixtures/standin/build.ts';

/**
 * Relay update bundles for the tests (issue 16), made as the release makes them (update/write-bundle.ts) from
 * stand-ins of another simplexmq version, and signed with a test key as the release signs them.
 */

export interface TestBundle {
  version: string;
  bytes: Buffer;
  signature: Buffer;
}

/** What makes a stand-in release "broken": its SMP server refuses every start, as a release with a fatal bug would. */
export const BROKEN_START = (script: string) =>
  script.replace('function start(o) {', "function start(o) {\n  if (SMP) fail('STAND-IN broken release: this smp-server refuses to start');");

export async function testBundle(dir: string, version: string, key: KeyPair, options: { brokenSmp?: boolean } = {}): Promise<TestBundle> {
  const smp = await buildStandin({ kind: 'smp', version, output: join(dir, `smp-server-${version}`), patch: options.brokenSmp ? BROKEN_START : undefined });
  const xftp = await buildStandin({ kind: 'xftp', version, output: join(dir, `xftp-server-${version}`) });
  const { path } = await writeUpdateBundle({ version, binaries: { 'smp-server': smp, 'xftp-server': xftp }, outDir: dir, createdAt: new Date('2026-12-01T00:00:00Z') });
  const bytes = await readFile(path);
  return { version, bytes, signature: signBundle(bytes, key, path.split('/').pop()!) };
}

/** A minisign signature of the bundle's bytes, as `simplex-pi sign` (and the real minisign) makes it. */
export function signBundle(bytes: Buffer, key: KeyPair, name: string): Buffer {
  return formatSignature(signMessage(key.secretKey, { bytes }, { trustedComment: defaultTrustedComment(name) }));
}
