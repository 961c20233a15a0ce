import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildPlan, IniSetting, OnionService } from '../plan/plan.ts';
import { serverAddress } from './address.ts';
import { fingerprintOf } from './address.ts';
import { atomicWrite, ensureDir } from './files.ts';
import { ownerOf } from './ids.ts';
import { readIni } from './ini.ts';
import { ensureOnionService } from './onion-service.ts';
import { type ServerSpec, ensurePassword, ensureServer } from './servers.ts';
import { ensureClientKeys, ensureRelayClientAuth } from './client-auth.ts';
import { checkXftpQuota } from './storage.ts';

export const STATE_DIR = '/var/lib/simplex-pi';
export const DONE = `${STATE_DIR}/firstboot.done`;

export interface ServerRecord {
  name: string;
  kind: 'smp' | 'xftp' | 'ssh';
  onion: string;
  address: string;
}

export type Log = (line: string) => void;

/** What the apps need, from the server's own files: the fingerprint file, the INI's password, the onion. */
async function addressOf(kind: 'smp' | 'xftp', cfgPath: string, ini: string, onion: string, port: number): Promise<string> {
  const fingerprint = (await readFile(join(cfgPath, 'fingerprint'), 'utf8')).trim();
  const computed = fingerprintOf(await readFile(join(cfgPath, 'ca.crt'), 'utf8'));
  if (fingerprint !== computed) throw new Error(`${cfgPath}/fingerprint does not match ca.crt; the relay would not start either`);
  const password = readIni(await readFile(join(cfgPath, ini), 'utf8'), 'AUTH', 'create_password');
  return serverAddress({ scheme: kind, fingerprint, password, onion, port });
}

/**
 * First boot: onion keys, relay identities, addresses. Every step looks at what exists first, so a run cut off
 * anywhere is completed by the next with the same keys; a finished run writes DONE and the unit skips later
 * boots.
 */
export async function firstboot(plan: BuildPlan, log: Log): Promise<ServerRecord[]> {
  const tor = ownerOf('debian-tor');
  const relay = ownerOf(plan.relayUser);
  await ensureDir(STATE_DIR, 0o700);
  const records: ServerRecord[] = [];

  /** One relay: its onion service, then its identity (as the relay user), then its address. */
  const relayServer = async (name: string, kind: 'smp' | 'xftp', onionService: OnionService, spec: Omit<ServerSpec, 'settings' | 'initArgs'>, server: { initArgs: string[]; ini: IniSetting[]; password?: 'generate' | 'none' }) => {
    const onion = await ensureOnionService(onionService, tor);
    log(`${name}: onion ${onion.created ? 'created' : 'kept'} ${onion.address}`);
    const identity = await ensureServer({ ...spec, initArgs: server.initArgs, settings: server.ini }, onion.address, relay);
    log(`${name}: identity ${identity.created ? 'created' : 'kept'}`);
    if (server.password === 'generate') log(`${name}: upload password ${(await ensurePassword(spec, relay)).created ? 'created' : 'kept'}`);
    records.push({ name, kind, onion: onion.address, address: await addressOf(kind, spec.cfgPath, spec.ini, onion.address, onionService.virtualPort) });
  };

  for (const instance of plan.smp.instances) {
    await relayServer(instance.name, 'smp', instance.onion, {
      binary: '/usr/local/bin/smp-server',
      ini: 'smp-server.ini',
      cfgPath: instance.cfgPath,
      logPath: instance.logPath,
      env: { SMP_SERVER_CFG_PATH: instance.cfgPath, SMP_SERVER_LOG_PATH: instance.logPath },
    }, instance);
  }

  if (plan.xftp) {
    const xftp = plan.xftp;
    // The XFTP server does not create its files directory (facts §1).
    await ensureDir(xftp.filesPath, 0o700, relay);
    await relayServer('xftp', 'xftp', xftp.onion, {
      binary: '/usr/local/bin/xftp-server',
      ini: 'file-server.ini',
      cfgPath: xftp.cfgPath,
      logPath: xftp.logPath,
      env: { XFTP_SERVER_CFG_PATH: xftp.cfgPath, XFTP_SERVER_LOG_PATH: xftp.logPath },
    }, xftp);
    // Said, not enforced: the relay still works, and the recipe is what must change (status says it again).
    const quota = await checkXftpQuota(xftp.quota, xftp.filesPath);
    log(`xftp: ${quota.ok ? '' : 'WARNING: '}${quota.message}`);
  }

  if (plan.ssh.onion) {
    const onion = await ensureOnionService(plan.ssh.onion, tor);
    log(`ssh: onion ${onion.created ? 'created' : 'kept'} ${onion.address}`);
    records.push({ name: 'ssh', kind: 'ssh', onion: onion.address, address: `ssh ${plan.ssh.user}@${onion.address}` });
  }

  const ownKey = await ensureRelayClientAuth(plan, tor, plan.smp.instances.map((i) => ({ service: i.onion, onion: records.find((r) => r.name === i.name)!.onion })));
  if (plan.tor.clientOnionAuthDir) log(`client authorization: the Pi's own key for its SMP relays ${ownKey.created ? 'created' : 'kept'} (they route messages for each other)`);
  const clientKeys = await ensureClientKeys(plan, tor);
  if (clientKeys.length) log(`client authorization: ${clientKeys.length} client key(s); only their holders can reach the onion services`);

  // The root-only copy of every address; the USB export reads it.
  await atomicWrite(join(STATE_DIR, 'servers.json'), `${JSON.stringify({ name: plan.name, servers: records }, null, 2)}\n`, 0o600);
  await atomicWrite(join(STATE_DIR, 'addresses.txt'), records.map((r) => `${r.name}\t${r.address}\n`).join(''), 0o600);
  await atomicWrite(DONE, `${new Date().toISOString()}\n`, 0o600);
  log(`done: ${records.length} servers; addresses in ${STATE_DIR}/addresses.txt`);
  return records;
}
