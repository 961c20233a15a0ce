import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildPlan } from '../plan/plan.ts';
import { type Owner, atomicWrite, ensureDir } from './files.ts';
import { base32 } from './onion.ts';

/**
 * Tor client authorization keys made on the Pi (recipe `tor.client_auth.generate`): each client key is allowed on
 * every onion service; its private half goes only to the USB stick (and a root-only copy). Keys are made once
 * and kept in KEYS; every run writes any `.auth` file that is missing.
 */

export const KEYS = '/var/lib/simplex-pi/client-auth.json';

export interface ClientKey {
  name: string;
  publicKey: string;
  privateKey: string;
}

function newClientKey(name: string): ClientKey {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const raw = (key: typeof publicKey, field: 'x' | 'd') => Buffer.from(key.export({ format: 'jwk' })[field]!, 'base64url');
  return { name, publicKey: base32(raw(publicKey, 'x')).toUpperCase(), privateKey: base32(raw(privateKey, 'd')).toUpperCase() };
}

export async function ensureClientKeys(plan: BuildPlan, tor: Owner): Promise<ClientKey[]> {
  const count = plan.tor.clientAuth.generate;
  if (count === 0) return [];
  const existing: ClientKey[] = JSON.parse(await readFile(KEYS, 'utf8').catch(() => '[]'));
  const keys = [...existing];
  for (let i = keys.length + 1; i <= count; i++) keys.push(newClientKey(`client-${i}`));
  if (keys.length !== existing.length) await atomicWrite(KEYS, `${JSON.stringify(keys, null, 2)}\n`, 0o600);
  for (const service of plan.tor.services) {
    const dir = join(service.dir, 'authorized_clients');
    await ensureDir(dir, 0o700, tor);
    for (const key of keys) {
      const path = join(dir, `${key.name}.auth`);
      if (!(await readFile(path).catch(() => undefined))) await atomicWrite(path, `descriptor:x25519:${key.publicKey}\n`, 0o600, tor);
    }
  }
  return keys;
}

/** A client's `.auth_private` line for one onion service (Tor's ClientOnionAuthDir format: no ".onion"). */
export function authPrivate(onion: string, key: ClientKey): string {
  return `${onion.replace(/\.onion$/, '')}:descriptor:x25519:${key.privateKey}\n`;
}
