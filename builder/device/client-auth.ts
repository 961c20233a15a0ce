import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_KEY_NAME, AUTHORIZED_CLIENTS, SELF_KEY_NAME, STATE, authPrivateLine, authorizedClientLine, generatedClientName } from '../plan/layout.ts';
import type { BuildPlan, OnionService } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { type Owner, atomicWrite, ensureDir } from './files.ts';
import { base32 } from './onion.ts';

/**
 * Tor client authorization keys made on the Pi (recipe `tor.client_auth.generate`): each member's key is allowed on
 * every relay's onion service, never on SSH's (that one admits only the admin's key, ensureAdminClientKey, and the Pi's own); its
 * private half goes only to a stick (device/export.ts) and a root-only copy. Keys are made once and kept in KEYS;
 * every run writes any `.auth` file that is missing.
 *
 * The Pi keeps the private halves after the export, root-only: Tor needs only the public ones, but without them a
 * member who loses their key, or an owner whose stick dies, would need new keys for everyone. Whoever can read them
 * (root, or someone holding the card) can read every onion service's own key and every relay password too, which
 * is strictly more: deleting them would cost the owner much and an attacker nothing.
 */

const KEYS = STATE.clientKeys;

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
  for (let i = keys.length + 1; i <= count; i++) keys.push(newClientKey(generatedClientName(i)));
  if (keys.length !== existing.length) await atomicWrite(KEYS, `${JSON.stringify(keys, null, 2)}\n`, 0o600);
  for (const service of relaysOf(plan).map((relay) => relay.onion)) {
    const dir = join(service.dir, AUTHORIZED_CLIENTS);
    await ensureDir(dir, 0o700, tor);
    for (const key of keys) {
      const path = join(dir, `${key.name}.auth`);
      if (!(await readFile(path).catch(() => undefined))) await atomicWrite(path, authorizedClientLine(key.publicKey), 0o600, tor);
    }
  }
  return keys;
}

/** One of the Pi's own keys (its relays', the admin's): made once, kept root-only at `path`, the same ever after. */
async function ownKey(path: string, name: string): Promise<{ key: ClientKey; created: boolean }> {
  const existing = await readFile(path, 'utf8').then((text) => JSON.parse(text) as ClientKey, () => undefined);
  if (existing) return { key: existing, created: false };
  const key = newClientKey(name);
  await atomicWrite(path, `${JSON.stringify(key, null, 2)}\n`, 0o600);
  return { key, created: true };
}

/**
 * The admin's own client key for the SSH onion service, when client authorization is on: members' keys open the
 * relays, this one opens SSH (security review M5), as does the Pi's own key, which never leaves it (ensureRelayClientAuth).
 * Exported only to the stick's admin folder.
 */
export async function ensureAdminClientKey(plan: BuildPlan, tor: Owner): Promise<{ key: ClientKey; created: boolean } | undefined> {
  const service = plan.ssh.onion;
  if (!service || !plan.tor.clientOnionAuthDir) return undefined;
  const { key, created } = await ownKey(STATE.adminClientKey, ADMIN_KEY_NAME);
  await ensureDir(join(service.dir, AUTHORIZED_CLIENTS), 0o700, tor);
  await atomicWrite(join(service.dir, AUTHORIZED_CLIENTS, `${ADMIN_KEY_NAME}.auth`), authorizedClientLine(key.publicKey), 0o600, tor);
  return { key, created };
}

/** A client's `.auth_private` line for one onion service. */
export function authPrivate(onion: string, key: ClientKey): string {
  return authPrivateLine(onion, key.privateKey);
}

/** The Pi's own client key for its onion services: made once at first boot, kept root-only, never exported. */
const SELF_KEY = STATE.selfClientKey;

/**
 * With client authorization on, the Pi's own Tor needs a key for each of its onion services: in private message
 * routing one SMP relay is the proxy that connects to another (the destination) through Tor, and the watchdog
 * (device/watchdog.ts) reaches every relay and SSH at its onion as a user would; an onion service with client
 * authorization admits no one without a key. The public half joins each service's AUTHORIZED_CLIENTS; the private
 * half goes to Tor's ClientOnionAuthDir as `<service>.auth_private`. It never leaves the Pi but in a backup, which
 * holds the services' own onion keys too. Members' apps that use these relays as proxies for relays elsewhere need
 * nothing more; apps elsewhere that would use them need a key of their own (docs: README, client authorization).
 */
export async function ensureRelayClientAuth(plan: BuildPlan, tor: Owner, relays: ReadonlyArray<{ service: OnionService; onion: string }>): Promise<{ created: boolean }> {
  const dir = plan.tor.clientOnionAuthDir;
  if (!dir) return { created: false };
  const { key, created } = await ownKey(SELF_KEY, SELF_KEY_NAME);
  await ensureDir(dir, 0o700, tor);
  for (const { service, onion } of relays) {
    await ensureDir(join(service.dir, AUTHORIZED_CLIENTS), 0o700, tor);
    await atomicWrite(join(service.dir, AUTHORIZED_CLIENTS, `${SELF_KEY_NAME}.auth`), authorizedClientLine(key.publicKey), 0o600, tor);
    await atomicWrite(join(dir, `${service.name}.auth_private`), authPrivate(onion, key), 0o600, tor);
  }
  return { created };
}
