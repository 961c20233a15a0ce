import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildStandin } from '../fixtures/standin/build.ts';
import type { TestServer } from './http-server.ts';

export interface ServedStandins {
  smp: { url: string; sha256: string; path: string };
  xftp: { url: string; sha256: string; path: string };
  releaseNotesUrl: string;
}

/**
 * Build the simplexmq stand-ins for `version` and serve them the way GitHub does: release assets and a
 * release API document whose body carries the `SHA2-256(<asset>)= <hex>` lines.
 */
export async function serveStandins(server: TestServer, dir: string, version: string): Promise<ServedStandins> {
  const out = {} as Record<'smp' | 'xftp', { url: string; sha256: string; path: string }>;
  const lines: string[] = [];
  for (const kind of ['smp', 'xftp'] as const) {
    const asset = `${kind}-server-ubuntu-22_04-aarch64`;
    const path = await buildStandin({ kind, version: `${version}.0`, output: join(dir, `${kind}-server`) });
    const bytes = await readFile(path);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    server.serve(`/releases/download/v${version}/${asset}`, bytes);
    lines.push(`SHA2-256(${asset})= ${sha256}`);
    out[kind] = { url: `${server.url}/releases/download/v${version}/${asset}`, sha256, path };
  }
  server.serve(`/api/releases/tags/v${version}`, {
    body: JSON.stringify({ tag_name: `v${version}`, body: `Stand-in release for tests\r\n\r\n${lines.join('\r\n')}\r\n` }),
    contentType: 'application/json',
  });
  return { ...out, releaseNotesUrl: `${server.url}/api/releases/tags/v{version}` };
}

/** A recipe (on the Debian base unless `base` says otherwise) with the stand-ins pinned by url + sha256 and SSH over Tor (a way to log in). */
export function debianStandinRecipe(options: {
  name: string;
  standins: ServedStandins;
  sshKey: string;
  instances?: number;
  overlays?: string[];
  base?: object;
  /** tor.client_auth.generate: client keys the Pi makes at first boot. */
  clientKeys?: number;
  /** simplexmq.version (the stand-ins must have been built for it). */
  version?: string;
  /** More top-level recipe lines (a recipe edit). */
  extra?: string[];
}): string {
  const { name, standins, sshKey, instances, overlays, clientKeys } = options;
  return [
    `name: ${name}`,
    `base: ${JSON.stringify(options.base ?? { provider: 'debian' })}`,
    `admin: { ssh: { over_tor: true, authorized_keys: ["${sshKey}"] } }`,
    ...(instances === undefined ? [] : [`smp: { instances: ${instances} }`]),
    ...(clientKeys === undefined ? [] : [`tor: { client_auth: { generate: ${clientKeys} } }`]),
    // A quota the test cards can hold (first boot and `status` warn about one they cannot).
    'xftp: { quota: 1gb }',
    ...(overlays === undefined ? [] : [`overlays: ${JSON.stringify(overlays)}`]),
    ...(options.extra ?? []),
    'simplexmq:',
    `  version: ${options.version ?? '6.5.2'}`,
    `  smp_server: { url: ${standins.smp.url}, sha256: ${standins.smp.sha256} }`,
    `  xftp_server: { url: ${standins.xftp.url}, sha256: ${standins.xftp.sha256} }`,
    '',
  ].join('\n');
}
