import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OnionService } from '../plan/plan.ts';
import { type Owner, atomicWrite, ensureDir } from './files.ts';
import { newOnionKey, onionAddress, torPublicKeyFile, torSecretKeyFile } from './onion.ts';

const SECRET = 'hs_ed25519_secret_key';
const PUBLIC = 'hs_ed25519_public_key';

export interface OnionResult {
  address: string;
  created: boolean;
}

/**
 * The onion service's keys, made here once and never again. The public key and hostname are written first and
 * the secret key last, each atomically: a present secret key means a complete set. A set without its secret key
 * (power cut) was never used by Tor (which starts after this program) and is replaced.
 */
export async function ensureOnionService(service: OnionService, tor: Owner): Promise<OnionResult> {
  await ensureDir(service.dir, 0o700, tor);
  const existing = await readFile(join(service.dir, SECRET)).catch(() => undefined);
  if (existing) {
    const publicFile = await readFile(join(service.dir, PUBLIC));
    const address = onionAddress(publicFile.subarray(32));
    const hostname = (await readFile(join(service.dir, 'hostname'), 'utf8')).trim();
    if (hostname !== address) throw new Error(`${service.dir}: hostname ${hostname} does not match the public key (${address}); not touching the keys`);
    return { address, created: false };
  }
  const key = newOnionKey();
  await atomicWrite(join(service.dir, PUBLIC), torPublicKeyFile(key.publicKey), 0o600, tor);
  await atomicWrite(join(service.dir, 'hostname'), `${key.address}\n`, 0o600, tor);
  await atomicWrite(join(service.dir, SECRET), torSecretKeyFile(key.seed), 0o600, tor);
  return { address: key.address, created: true };
}
