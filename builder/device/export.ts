import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import QRCode from 'qrcode';
import type { BuildPlan } from '../plan/plan.ts';
import { STATE } from '../plan/layout.ts';
import { type ServerRecord, addressLines } from './server-list.ts';
import { type ClientKey, authPrivate } from './client-auth.ts';

const run = promisify(execFile);
const MTOOLS = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/**
 * The USB export: the addresses, written to a stick with the recipe's FAT label. The stick is never mounted:
 * mtools writes the FAT filesystem from user space, so nothing on the stick is ever executed, opened as a
 * device or followed as a link, and a stick pulled out early leaves no mount behind. A stick with any other
 * label is never written.
 */

export type ExportResult = { written: string[]; device: string } | { skipped: string };

async function probe(device: string, tag: 'LABEL' | 'TYPE'): Promise<string> {
  const { stdout } = await run('blkid', ['-o', 'value', '-s', tag, device]).catch(() => ({ stdout: '' }));
  return stdout.trim();
}

/** The block device carrying the label, if one is plugged in. */
async function findStick(label: string): Promise<string | undefined> {
  const { stdout } = await run('blkid', ['-t', `LABEL=${label}`, '-o', 'device']).catch(() => ({ stdout: '' }));
  return stdout.split('\n').find(Boolean);
}

/**
 * The host name the Pi has now, which names the stick's folder: Raspberry Pi Imager may have set another than the
 * recipe's. Only characters every FAT driver takes; the recipe's name if the kernel has none.
 */
export function runningHostname(plan: BuildPlan, current = hostname()): string {
  const safe = current.trim().replace(/[^A-Za-z0-9._-]/g, '-');
  return safe || plan.hostname;
}

export function stickFolder(host: string): string {
  return `simplex-pi-${host}`;
}

export function readme(plan: BuildPlan, records: readonly ServerRecord[], host = runningHostname(plan)): string {
  return [
    `SimpleX relays of "${plan.name}" (host ${host})`,
    '',
    'THIS STICK NOW HOLDS SECRETS. The SMP addresses contain the password that lets people create queues on',
    'your relays. Give them only to the members of your group, then wipe or lock away this stick.',
    '',
    'Files:',
    '  addresses.txt  every server address, one per line',
    '  servers.json   the same, for programs',
    '  qr/            one QR code per server: in the SimpleX app, Settings > Network & servers > SMP servers',
    '                 (or XFTP servers) > Add server > Scan server QR code',
    '  client-auth/   (only with client authorization) one folder per person: the keys their Tor (Orbot) needs to',
    '                 reach the relays at all. Give each person only their own folder.',
    '',
    'Servers:',
    ...records.map((r) => `  ${r.name.padEnd(6)} ${r.address}`),
    '',
  ].join('\r\n');
}

/** Write the export files into a scratch directory, then onto the stick with mtools. */
export async function exportToStick(plan: BuildPlan, device: string | undefined): Promise<ExportResult> {
  const label = plan.export.usbLabel;
  const stick = device ?? (await findStick(label));
  if (!stick) return { skipped: `no USB stick labelled ${label} is plugged in; plug one in at any time and the addresses are written to it` };
  const found = await probe(stick, 'LABEL');
  if (found !== label) return { skipped: `${stick} is labelled "${found}", not ${label}: not writing to it` };
  const type = await probe(stick, 'TYPE');
  if (type !== 'vfat') return { skipped: `${stick} is ${type || 'not a filesystem'}, not FAT: not writing to it` };

  const servers = JSON.parse(await readFile(STATE.servers, 'utf8')) as { servers: ServerRecord[] };
  const records = servers.servers;
  const scratch = await mkdtemp(join(tmpdir(), 'simplex-pi-export-'));
  try {
    const host = runningHostname(plan);
    const folder = stickFolder(host);
    const files: Array<[string, Buffer | string]> = [['README.txt', readme(plan, records, host)]];
    if (plan.export.formats.includes('txt')) files.push(['addresses.txt', addressLines(records, '\r\n')]);
    if (plan.export.formats.includes('json')) files.push(['servers.json', `${JSON.stringify(servers, null, 2)}\n`]);
    if (plan.export.formats.includes('qr')) {
      for (const record of records.filter((r) => r.kind !== 'ssh')) {
        files.push([`qr/${record.name}.png`, await QRCode.toBuffer(record.address, { errorCorrectionLevel: 'M', margin: 4, scale: 8 })]);
      }
    }
    const clientKeys: ClientKey[] = JSON.parse(await readFile(STATE.clientKeys, 'utf8').catch(() => '[]'));
    for (const key of clientKeys) {
      for (const record of records) files.push([`client-auth/${key.name}/${record.name}.auth_private`, authPrivate(record.onion, key)]);
    }
    const target = `${stick}`;
    await run('mmd', ['-D', 's', '-i', target, `::/${folder}`], { env: MTOOLS }).catch(() => undefined);
    const dirs = new Set(files.map(([name]) => name.split('/').slice(0, -1)).flatMap((parts) => parts.map((_, i) => parts.slice(0, i + 1).join('/'))));
    for (const sub of [...dirs].sort()) await run('mmd', ['-D', 's', '-i', target, `::/${folder}/${sub}`], { env: MTOOLS }).catch(() => undefined);
    for (const [name, content] of files) {
      const local = join(scratch, name.replaceAll('/', '_'));
      await writeFile(local, content);
      await run('mcopy', ['-o', '-i', target, local, `::/${folder}/${name}`], { env: MTOOLS });
    }
    await run('sync', []);
    return { written: files.map(([name]) => `${folder}/${name}`), device: stick };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
