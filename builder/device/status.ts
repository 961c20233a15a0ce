import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { STATE, STATE_DIR, TOR_CONTROL_COOKIE, TOR_CONTROL_SOCKET, TOR_USER, UNITS, unitName } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { COMMAND_NAME } from './commands.ts';
import { describeExport, exportArmed, lastExport } from './export-log.ts';
import { lastBackup } from './backup.ts';
import { listeningNow } from './listening.ts';
import { restoredFrom } from './restored.ts';
import { runningHostname } from './host.ts';
import { checkXftpQuota } from './storage.ts';
import { runTool } from './tool.ts';

/**
 * Whether reading failed for want of root: most of what status reports is root's to read (STATE_DIR, Tor's
 * cookie, the relay's files). Said as such, never as "not finished" or "is tor running?", which would send a
 * person after a problem that is not there.
 */
export function denied(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/** What a person without root is told to run instead. */
export const WITH_SUDO = `run \`sudo ${COMMAND_NAME} status\``;


/** `PROGRESS=… TAG=… SUMMARY="…"` out of Tor's `status/bootstrap-phase`. */
export function parseBootstrap(reply: string): { progress: number; summary: string } | undefined {
  const match = /status\/bootstrap-phase=\S+ BOOTSTRAP PROGRESS=(\d+) TAG=\S+ SUMMARY="([^"]*)"/.exec(reply);
  return match ? { progress: Number(match[1]), summary: match[2]! } : undefined;
}

/** Ask Tor over its control socket how far it has bootstrapped (cookie authentication, as Debian sets it up). */
export async function torBootstrap(socket = TOR_CONTROL_SOCKET, cookieFile = TOR_CONTROL_COOKIE): Promise<string> {
  try {
    const cookie = (await readFile(cookieFile)).toString('hex');
    const reply = await new Promise<string>((resolve, reject) => {
      const connection = createConnection(socket);
      let data = '';
      connection.setTimeout(5000, () => connection.destroy(new Error('no answer within 5 s')));
      connection.on('data', (chunk) => (data += chunk.toString()));
      connection.on('error', reject);
      connection.on('close', () => resolve(data));
      connection.write(`AUTHENTICATE ${cookie}\r\nGETINFO status/bootstrap-phase\r\nQUIT\r\n`);
    });
    const phase = parseBootstrap(reply);
    if (!phase) return `unknown (Tor answered: ${reply.split('\r\n')[0]})`;
    return phase.progress === 100 ? 'connected to the Tor network (100%)' : `connecting: ${phase.progress}% (${phase.summary})`;
  } catch (error) {
    if (denied(error)) return `unknown: permission denied (only root and the ${TOR_USER} group may ask Tor); ${WITH_SUDO}`;
    return `unknown: cannot ask Tor (${(error as Error).message}); is tor running? \`systemctl status ${unitName(UNITS.tor)}\``;
  }
}

async function unitState(unit: string): Promise<string> {
  // Bounded like every command the device program runs: a systemd that does not answer makes the state unknown.
  // `is-active` exits non-zero for every state but active, and still prints it.
  const result = await runTool('systemctl', ['is-active', unit], { timeoutMs: 10_000 }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return result.stdout.trim() || 'unknown';
}

/** The state of the Pi without a secret in it: first boot, the services, storage, Tor, the last export. */
async function healthLines(plan: BuildPlan, forStick: boolean): Promise<string[]> {
  const host = runningHostname(plan);
  // Raspberry Pi Imager may have given the Pi another host name than the recipe's; the stick's folder uses this one.
  const lines: string[] = [`simplex-pi "${plan.name}" on ${host}${host === plan.hostname ? '' : ` (the recipe named it ${plan.hostname})`}`, ''];
  const done = await readFile(STATE.firstbootDone, 'utf8').catch((error: unknown) => (denied(error) ? null : undefined));
  if (done === null) lines.push(`First boot: unknown: permission denied (only root may read ${STATE_DIR}); ${WITH_SUDO}`);
  else lines.push(done ? `First boot: finished ${done.trim()}` : `First boot: NOT FINISHED. See \`journalctl -u ${unitName(UNITS.firstboot)}\` for what it is doing or what went wrong.`);
  const listening = await listeningNow();
  lines.push('', 'Services:');
  for (const { unit, port } of plan.reportedUnits) {
    const state = await unitState(unit);
    const ok = state === 'active' ? 'ok ' : '!! ';
    lines.push(`  ${ok} ${unitName(unit).padEnd(20)} ${state}${port ? (listening.has(port) ? `, listening on ${port}` : `, NOT listening on ${port}`) : ''}`);
  }
  if (plan.xftp) {
    const quota = await checkXftpQuota(plan.xftp.quota, plan.xftp.filesPath).catch((error: Error) => ({
      ok: false,
      message: denied(error) ? `cannot check the XFTP quota: permission denied; ${WITH_SUDO}` : `cannot check the XFTP quota: ${error.message}`,
    }));
    lines.push('', `Storage: ${quota.ok ? 'ok ' : '!! '} ${quota.message}`);
  }
  lines.push('', `Tor: ${await torBootstrap()}`);
  // On a stick, only when: which stick and whether in the clear would tell whoever holds this one where to look.
  const exported = await lastExport().then(
    (record) => (record ? (forStick ? record.at : describeExport(record)) : 'never'),
    () => 'unknown (run with sudo)',
  );
  lines.push(`Secrets last exported to a stick: ${exported}`);
  const backedUp = await lastBackup().then(
    (record) => (record ? (forStick ? record.at : `${record.at} (${record.bytes} bytes, encrypted with ${record.encryption === 'recipient' ? 'the recipient key' : 'a passphrase'}, to ${record.to})`) : 'never: a dead card would cost every address (`sudo simplex-pi backup`)'),
    () => 'unknown (run with sudo)',
  );
  lines.push(`Last backup: ${backedUp}`);
  const restored = await restoredFrom().catch(() => undefined);
  if (restored) lines.push(`Restored from backup ${restored.id}, made on ${restored.host} at ${restored.createdAt}. The card it came from must stay off for good: two Pis with the same onion addresses fight over them.`);
  if (!forStick) {
    const armed = await exportArmed().then(
      (yes) => (yes ? 'ARMED: the next FAT USB stick with the label gets every address and key. Plug in your own, or run `sudo simplex-pi export`.' : 'done'),
      () => 'unknown (run with sudo)',
    );
    lines.push(`Automatic export after first boot: ${armed}`);
  }
  lines.push('');
  return lines;
}

/** The health report a plugged-in stick gets: no address, no key, no password. */
export async function healthReport(plan: BuildPlan): Promise<string> {
  return `${[...(await healthLines(plan, true)), `Written ${new Date().toISOString()}`].join('\n')}\n`;
}

/** `simplex-pi status`: what a person needs to see whether the relays work, without knowing systemd or Tor. */
export async function status(plan: BuildPlan): Promise<string> {
  const lines = await healthLines(plan, false);
  const addresses = await readFile(STATE.addresses, 'utf8').catch((error: NodeJS.ErrnoException) =>
    denied(error) ? `Permission denied: they hold the relays' passwords, only root may read them; ${WITH_SUDO}.\n` : 'No addresses yet: first boot has not finished.\n',
  );
  lines.push('Addresses (paste or scan them into the SimpleX apps of your group):', ...addresses.trimEnd().split('\n').map((l) => `  ${l.replace('\t', '  ')}`));
  return `${lines.join('\n')}\n`;
}
