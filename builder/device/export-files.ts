import QRCode from 'qrcode';
import { ADMIN_FOLDER, ENCRYPTED_ARCHIVE, HEALTH_FILE } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { type ClientKey, authPrivate } from './client-auth.ts';
import { type ServerRecord, addressLines } from './server-list.ts';
import type { StickFile } from './stick-writer.ts';

/**
 * What goes on a stick, by who may read it. Members' material (the relay addresses, their QR codes, each person's
 * client-authorization keys for the relays) and the admin's (the SSH onion address and its own client key, in
 * ADMIN_FOLDER) are kept apart: handing a member their folder never hands them the way into the Pi (review M5).
 */

export interface ExportState {
  /** servers.json of first boot: every relay, and SSH. */
  servers: ServerRecord[];
  /** Members' client-authorization keys made on the Pi (tor.client_auth.generate). */
  clientKeys: ClientKey[];
  /** The admin's client key for the SSH onion service, when client authorization is on. */
  adminKey: ClientKey | undefined;
}

const CRLF = '\r\n';
const relaysOnly = (servers: readonly ServerRecord[]) => servers.filter((s) => s.kind !== 'ssh');

function header(plan: BuildPlan, host: string): string[] {
  return [`SimpleX relays of "${plan.name}" (host ${host})`, ''];
}

/** How the secrets came to the stick: the one automatic export after first boot, or root's `simplex-pi export`. */
export type SecretsTrigger = 'first' | 'root';

/** README.txt of a stick that holds the secrets in the clear. */
export function readme(plan: BuildPlan, records: readonly ServerRecord[], host: string, trigger: SecretsTrigger = 'first'): string {
  const relays = relaysOnly(records);
  return [
    ...header(plan, host),
    'THIS STICK NOW HOLDS SECRETS. The SMP and XFTP addresses contain the passwords that let people use your',
    'relays. Give them only to the members of your group, then wipe this stick or lock it away.',
    '',
    'Files:',
    '  addresses.txt  every relay address, one per line',
    '  servers.json   the same, for programs',
    '  qr/            one QR code per relay: in the SimpleX app, Settings > Network & servers > SMP servers',
    '                 (or XFTP servers) > Add server > Scan server QR code',
    '  client-auth/   (only with client authorization) one folder per person: the keys their Tor (Orbot) needs to',
    '                 reach the relays at all. Give each person only their own folder.',
    `  ${ADMIN_FOLDER}/         for the administrator only: the SSH address and its key. Never hand it to members.`,
    `  ${HEALTH_FILE}     whether the relays, Tor and the card were well when this was written (no secrets)`,
    '',
    trigger === 'first'
      ? 'This stick got the secrets in the one automatic export after first boot. A stick plugged in later gets only'
      : 'This stick got the secrets because root ran `simplex-pi export` on the Pi. A stick plugged in gets only',
    'the health report, unless you log in and run `sudo simplex-pi export`.',
    '',
    'Relays:',
    ...relays.map((r) => `  ${r.name.padEnd(6)} ${r.address}`),
    '',
  ].join(CRLF);
}

/**
 * README.txt of a stick that got no secret this time: why, and how to get them. `stillHolds`: the folder keeps the
 * secret files of an earlier export, which this one did not remove (they are the owner's): say so.
 */
export function healthReadme(plan: BuildPlan, host: string, stillHolds = false): string {
  return [
    ...header(plan, host),
    stillHolds
      ? `THIS STICK STILL HOLDS SECRETS from an earlier export (addresses.txt, qr/, client-auth/, ${ADMIN_FOLDER}/): keep it safe or wipe it. This time it got only ${HEALTH_FILE}.`
      : `This stick holds no secret: only ${HEALTH_FILE}, whether the relays, Tor and the card are well.`,
    '',
    'The relay addresses and keys were written once, to the stick plugged in at first boot. Since then a stick',
    'gets them only when the administrator asks for it on the Pi: log in (SSH or keyboard) and run',
    '',
    '  sudo simplex-pi export',
    '',
    'with this stick plugged in.',
    '',
  ].join(CRLF);
}

/** README.txt of a stick that holds the secrets encrypted to the recipe's age recipient (`stillHolds`: see healthReadme). */
export function encryptedReadme(plan: BuildPlan, host: string, recipient: string, stillHolds = false): string {
  return [
    ...header(plan, host),
    ...(stillHolds ? [`THIS STICK ALSO HOLDS SECRETS IN THE CLEAR from an earlier export (addresses.txt, qr/, client-auth/, ${ADMIN_FOLDER}/): keep it safe or wipe it.`, ''] : []),
    `${ENCRYPTED_ARCHIVE} holds the relay addresses and keys, encrypted with age to ${recipient}`,
    '(the recipe\'s export.encrypt_to). Only the holder of its identity (the AGE-SECRET-KEY-1... file) can open it:',
    '',
    `  age -d -i your-identity.txt ${ENCRYPTED_ARCHIVE} > secrets.tar`,
    '  tar xf secrets.tar',
    '',
    `${HEALTH_FILE} (not encrypted, no secrets) says whether the relays, Tor and the card were well.`,
    '',
  ].join(CRLF);
}

/** The secret files: members' relay addresses and keys, and the admin's folder. */
export async function secretFiles(plan: BuildPlan, state: ExportState, host: string, trigger: SecretsTrigger = 'first'): Promise<StickFile[]> {
  const relays = relaysOnly(state.servers);
  const ssh = state.servers.find((s) => s.kind === 'ssh');
  const files: StickFile[] = [{ path: 'README.txt', content: readme(plan, state.servers, host, trigger) }];
  if (plan.export.formats.includes('txt')) files.push({ path: 'addresses.txt', content: addressLines(relays, CRLF) });
  if (plan.export.formats.includes('json')) files.push({ path: 'servers.json', content: `${JSON.stringify({ name: plan.name, servers: relays }, null, 2)}\n` });
  if (plan.export.formats.includes('qr')) {
    for (const record of relays) {
      files.push({ path: `qr/${record.name}.png`, content: await QRCode.toBuffer(record.address, { errorCorrectionLevel: 'M', margin: 4, scale: 8 }) });
    }
  }
  for (const key of state.clientKeys) {
    for (const record of relays) files.push({ path: `client-auth/${key.name}/${record.name}.auth_private`, content: authPrivate(record.onion, key) });
  }
  if (ssh) {
    files.push({
      path: `${ADMIN_FOLDER}/ssh.txt`,
      content: [
        'SSH to the Pi through Tor (for the administrator only):',
        `  ${ssh.address}`,
        ...(state.adminKey
          ? ['', `Client authorization is on: put ssh.auth_private into your Tor's ClientOnionAuthDir (torrc), or Orbot's`, 'client authorization, before connecting.']
          : []),
        '',
      ].join(CRLF),
    });
    if (state.adminKey) files.push({ path: `${ADMIN_FOLDER}/ssh.auth_private`, content: authPrivate(ssh.onion, state.adminKey) });
  }
  return files;
}
