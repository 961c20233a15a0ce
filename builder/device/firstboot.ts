import { readFile } from 'node:fs/promises';
import { exists } from '../exists.ts';
import { join } from 'node:path';
import { STATE, STATE_DIR, TOR_USER } from '../plan/layout.ts';
import type { BuildPlan, RelayServer } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { fingerprintOf, serverAddress } from './address.ts';
import { atomicWrite, ensureDir } from './files.ts';
import { ownerOf } from './ids.ts';
import { readIni } from './ini.ts';
import { ensureOnionService } from './onion-service.ts';
import { ensurePassword, ensureServer } from './servers.ts';
import { type ServerRecord, addressLines } from './server-list.ts';
import { ensureAdminClientKey, ensureClientKeys, ensureRelayClientAuth } from './client-auth.ts';
import { checkXftpQuota } from './storage.ts';
import { markAdopted, migrateRestoredIni, restoredWarning } from './adopt-restored.ts';
import { restoredFrom } from './restored.ts';

export type { ServerRecord };

export type Log = (line: string) => void;

/** What the apps need, from the server's own files: the fingerprint file, the INI's password, the onion. */
async function addressOf(relay: RelayServer, onion: string): Promise<string> {
  const { cfgPath } = relay;
  const fingerprint = (await readFile(join(cfgPath, 'fingerprint'), 'utf8')).trim();
  const computed = fingerprintOf(await readFile(join(cfgPath, 'ca.crt'), 'utf8'));
  if (fingerprint !== computed) throw new Error(`${cfgPath}/fingerprint does not match ca.crt; the relay would not start either`);
  const password = readIni(await readFile(join(cfgPath, relay.iniFile), 'utf8'), 'AUTH', 'create_password');
  return serverAddress({ scheme: relay.kind, fingerprint, password, onion, port: relay.onion.virtualPort });
}

/**
 * First boot: onion keys, relay identities, addresses. Every step looks at what exists first, so a run cut off
 * anywhere is completed by the next with the same keys; a finished run writes STATE.firstbootDone and the
 * unit skips later boots.
 */
export async function firstboot(plan: BuildPlan, log: Log): Promise<ServerRecord[]> {
  const tor = ownerOf(TOR_USER);
  const relayUser = ownerOf(plan.relayUser);
  await ensureDir(STATE_DIR, 0o700);
  const records: ServerRecord[] = [];
  // A card restored from a backup (`simplex-pi restore`): its identities are kept like any made here; their INI is
  // carried into this image's simplexmq, once.
  const restored = await restoredFrom();
  if (restored && !restored.complete) {
    throw new Error(
      `the restore of backup ${restored.id} onto this card was cut off before it finished: this card holds only part of that Pi's identities, and ` +
        'first boot will not make new ones beside them. Flash the image again and run `simplex-pi restore` again (before the first boot); nothing was made',
    );
  }
  const adopting = restored && restored.adoptedFor === undefined ? restored : undefined;
  if (adopting) log(restoredWarning(adopting));

  // Each relay: its onion service, then its identity (as the relay user), then its address.
  for (const relay of relaysOf(plan)) {
    if (relay.kind === 'xftp') {
      // The XFTP server does not create its files directory (docs/simplexmq-and-tor.md); the image has it, and a
      // card where it is gone gets it again.
      await ensureDir(relay.filesPath, 0o700, relayUser);
    }
    const onion = await ensureOnionService(relay.onion, tor);
    log(`${relay.name}: onion ${onion.created ? 'created' : 'kept'} ${onion.address}`);
    if (adopting && !onion.created && (await exists(join(relay.cfgPath, relay.iniFile)))) await migrateRestoredIni(relay, onion.address, relayUser, adopting, plan, log);
    const identity = await ensureServer(relay, onion.address, relayUser);
    log(`${relay.name}: identity ${identity.created ? 'created' : 'kept'}`);
    if (relay.kind === 'xftp' && relay.password === 'generate') log(`${relay.name}: upload password ${(await ensurePassword(relay, relayUser)).created ? 'created' : 'kept'}`);
    records.push({ name: relay.name, kind: relay.kind, onion: onion.address, address: await addressOf(relay, onion.address) });
    if (relay.kind === 'xftp') {
      // Said, not enforced: the relay still works, and the recipe is what must change (status says it again).
      const quota = await checkXftpQuota(relay.quota, relay.filesPath);
      log(`${relay.name}: ${quota.ok ? '' : 'WARNING: '}${quota.message}`);
    }
  }

  if (plan.ssh.onion) {
    const onion = await ensureOnionService(plan.ssh.onion, tor);
    log(`ssh: onion ${onion.created ? 'created' : 'kept'} ${onion.address}`);
    records.push({ name: 'ssh', kind: 'ssh', onion: onion.address, address: `ssh ${plan.ssh.user}@${onion.address}` });
  }

  const own = [...relaysOf(plan).map((r) => ({ name: r.name, service: r.onion })), ...(plan.ssh.onion ? [{ name: 'ssh', service: plan.ssh.onion }] : [])];
  const ownKey = await ensureRelayClientAuth(plan, tor, own.map(({ name, service }) => ({ service, onion: records.find((r) => r.name === name)!.onion })));
  if (plan.tor.clientOnionAuthDir) log(`client authorization: the Pi's own key for its onion services ${ownKey.created ? 'created' : 'kept'} (the relays route messages for each other; the watchdog reaches each service)`);
  const clientKeys = await ensureClientKeys(plan, tor);
  if (clientKeys.length) log(`client authorization: ${clientKeys.length} client key(s); only their holders can reach the relays`);
  const admin = await ensureAdminClientKey(plan, tor);
  if (admin) log(`client authorization: the admin's key for SSH ${admin.created ? 'created' : 'kept'}; members' keys do not open SSH`);

  if (adopting) await markAdopted(adopting, plan);

  // The root-only copy of every address; the USB export reads it.
  await atomicWrite(STATE.servers, `${JSON.stringify({ name: plan.name, servers: records }, null, 2)}\n`, 0o600);
  await atomicWrite(STATE.addresses, addressLines(records), 0o600);
  // The one automatic export of secrets (device/export.ts) is allowed from now on, until it has happened: only when
  // this run is the one that finishes first boot. A run by hand on a finished card (`sudo simplex-pi firstboot`)
  // must not arm it again. Written before firstboot.done, so a power cut between the two leaves it armed and first
  // boot unfinished, and the next boot writes both again.
  if (!(await exists(STATE.firstbootDone))) await atomicWrite(STATE.exportPending, `${new Date().toISOString()}\n`, 0o600);
  await atomicWrite(STATE.firstbootDone, `${new Date().toISOString()}\n`, 0o600);
  log(`done: ${records.length} servers; addresses in ${STATE.addresses}`);
  return records;
}
