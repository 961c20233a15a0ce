import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { ServerRecord } from '../../builder/device/firstboot.ts';
import { attachPartition } from '../../builder/image/loop.ts';
import { unmount } from '../../builder/image/mounts.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { ADMIN_FOLDER, stickFolder } from '../../builder/plan/layout.ts';
import { Resources } from '../../builder/resources.ts';
import { REPO, TEST_CACHE, cli, testSshKeyPair } from '../helpers/env.ts';
import type { TestServer } from '../helpers/http-server.ts';
import { debianStandinRecipe, serveStandins } from '../helpers/standins.ts';
import { decodeQrPng, listStick, readStickFile } from '../helpers/stick.ts';

/**
 * The end-to-end scenario's pieces, shared by the boot test (test/e2e/boot.test.ts) and the benchmark
 * (ci/bench.ts): the image under test, what the in-VM agent reports, and what the host reads off a stick or a
 * powered-off card.
 */

/** The e2e image: Debian base, the simplexmq stand-ins, 3 SMP relays + XFTP + SSH over Tor, one client key, and the test overlay. */
const E2E_OVERLAY = join(REPO, 'test/e2e/overlay');

export interface E2eImage {
  image: string;
  plan: BuildPlan;
  buildSeconds: number;
  /** The private half of the recipe's SSH key (admin.ssh.authorized_keys). */
  sshPrivateKey: string;
}

export async function buildE2eImage(
  server: TestServer,
  dir: string,
  cache = TEST_CACHE,
  options: { name?: string; base?: object; simplexmq?: string; extra?: string[]; overlays?: string[] } = {},
): Promise<E2eImage> {
  await mkdir(dir, { recursive: true });
  const version = options.simplexmq ?? '6.5.2';
  const standins = await serveStandins(server, dir, version);
  const name = options.name ?? 'e2e';
  const recipe = join(dir, `${name}.yaml`);
  const sshKey = await testSshKeyPair();
  await writeFile(
    recipe,
    debianStandinRecipe({ name, standins, sshKey: sshKey.publicKey, instances: 3, clientKeys: 1, overlays: [E2E_OVERLAY, ...(options.overlays ?? [])], base: options.base, version, extra: options.extra }),
  );
  const out = join(dir, 'out');
  const started = Date.now();
  const result = await cli(['build', '--recipe', recipe, '--out', out, '--cache', cache, '--compress', 'none']);
  if (result.exitCode !== 0) throw new Error(`building the e2e image failed:\n${result.all}`);
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { plan: BuildPlan };
  return { image: join(out, `${name}.img`), plan: manifest.plan, buildSeconds: (Date.now() - started) / 1000, sshPrivateKey: sshKey.privateKeyFile };
}

export interface UnitState {
  ActiveState: string;
  SubState: string;
  Result: string;
  ConditionResult: string;
  ExecMainStartTimestampMonotonic: string;
  NRestarts: string;
}

/** What test/e2e/overlay/usr/local/lib/simplex-pi-e2e/agent.mjs reports from inside the VM. */
export interface AgentReport {
  bootId: string;
  uptimeSeconds: number;
  units: Record<string, UnitState>;
  listening: string[];
  onions: Record<string, { hostname: string | null; mtime: number | null }>;
  keys: Record<string, string | null>;
  addresses: string | null;
  servers: { servers: ServerRecord[] } | null;
  firstbootDone: boolean;
  firstbootJournal: string;
  exportJournal: string;
  /** Every secret first boot made, as the Pi holds them: relay passwords, client-authorization private keys. */
  secrets: string[];
  relayJournal: Record<string, string>;
  /** Per relay unit: its main process's name, and what its mount namespace shows in /etc/opt and /var/opt. */
  relayView: Record<string, { comm: string | null; etcOpt: string[]; varOpt: string[] }>;
  status: string;
  interfaces: Record<string, string[]>;
  nftTables: string;
}

/** The agent's `system` report: the base's own first-boot work (see agent.mjs). */
export interface SystemReport {
  systemState: string;
  jobs: string;
  failedUnits: string;
  rootSource: string;
  diskSectors: number | null;
  rootStart: number;
  rootSectors: number;
  fsBytes: number;
  fsAvailBytes: number;
  machineId: string | null;
  cmdline: string;
  cardCmdline: string | null;
  fstab: string | null;
  hostname: string;
  resizeUnit: UnitState & { enabled: string };
  growfsRoot: UnitState;
  growfsJournal: string;
  cloudInit: string | null;
  cloudInitUnits: Record<string, UnitState>;
  users: Array<{ name: string; uid: number; home: string; shell: string; passwordHash: string | null; authorizedKeys: string | null }>;
  gettyTty1: string;
  userconfig: (UnitState & { enabled: string }) | null;
  firstboot: UnitState;
  firstbootAfter: string;
}

export interface StickContents {
  files: string[];
  /** name -> address, from addresses.txt (the relays). */
  addresses: Map<string, string>;
  servers: ServerRecord[];
  /** name -> the text its QR code decodes to. */
  qr: Map<string, string | undefined>;
  /** The admin folder's SSH line (`ssh user@onion`). */
  ssh: string | undefined;
}

/** Every file on the stick with its bytes (directories left out). */
export function stickFiles(stick: string): Map<string, Buffer> {
  return new Map(listStick(stick).filter((f) => !f.endsWith('/')).map((f) => [f.replace(/^::\//, ''), readStickFile(stick, f.replace(/^::\//, ''))]));
}

/**
 * Which of the secrets stand anywhere in the stick image's bytes: in a file, a directory entry, or the slack and
 * free space around them. Stronger than reading its files, and independent of how the export named them.
 */
export async function secretsOnStick(stick: string, secrets: readonly string[]): Promise<string[]> {
  const bytes = await readFile(stick);
  return secrets.filter((secret) => bytes.includes(Buffer.from(secret)));
}

/** Read what an export of secrets wrote to a stick (mtools; the stick image is never mounted). */
export function readStick(stick: string, hostname: string): StickContents {
  const folder = stickFolder(hostname);
  const files = listStick(stick);
  const addresses = new Map<string, string>();
  for (const line of readStickFile(stick, `${folder}/addresses.txt`).toString().split('\r\n').filter(Boolean)) {
    const [name, address] = line.split('\t');
    addresses.set(name!, address!);
  }
  const servers = (JSON.parse(readStickFile(stick, `${folder}/servers.json`).toString()) as { servers: ServerRecord[] }).servers;
  const qr = new Map<string, string | undefined>();
  for (const file of files.filter((f) => f.startsWith(`::/${folder}/qr/`) && f.endsWith('.png'))) {
    qr.set(file.replace(/^.*\/qr\/(.*)\.png$/, '$1'), decodeQrPng(readStickFile(stick, file.replace(/^::\//, ''))));
  }
  const ssh = /^ {2}(ssh \S+)\r$/m.exec(readStickFile(stick, `${folder}/${ADMIN_FOLDER}/ssh.txt`).toString())?.[1];
  return { files, addresses, servers, qr, ssh };
}

/**
 * Files on a powered-off card's root filesystem, as bytes (undefined when absent). Mounting replays the ext4
 * journal, as the card's next boot would.
 */
export async function filesOnCard(disk: string, paths: readonly string[], mountPoint: string): Promise<Record<string, Buffer | undefined>> {
  const resources = new Resources();
  try {
    const { root } = raspberryPiLayout(await readPartitionTable(disk));
    const loop = await attachPartition(disk, root, resources);
    await execa('mkdir', ['-p', mountPoint]);
    await execa('mount', ['-t', 'ext4', loop.device, mountPoint]);
    resources.hold('e2e card mount', () => unmount(mountPoint));
    const files: Record<string, Buffer | undefined> = {};
    for (const path of paths) files[path] = await readFile(join(mountPoint, path)).catch(() => undefined);
    return files;
  } finally {
    await resources.releaseAll();
  }
}

/** sha256 of files on a powered-off card's root filesystem (null when absent). */
export async function hashesOnCard(disk: string, paths: readonly string[], mountPoint: string): Promise<Record<string, string | null>> {
  const files = await filesOnCard(disk, paths, mountPoint);
  return Object.fromEntries(paths.map((path) => [path, files[path] ? createHash('sha256').update(files[path]).digest('hex') : null]));
}

/** The key files first boot makes for one server: its onion keys and, for a relay, its identity. */
export function keyFilesOf(plan: BuildPlan, server: string): { onion: string[]; identity: string[] } {
  const service = plan.tor.services.find((s) => s.name === `simplex-${server}`);
  if (!service) throw new Error(`no onion service for ${server} in the plan`);
  const onion = [`${service.dir}/hs_ed25519_secret_key`, `${service.dir}/hs_ed25519_public_key`];
  const cfgPath = server === 'xftp' ? plan.xftp?.cfgPath : plan.smp.instances.find((i) => i.name === server)?.cfgPath;
  const identity = cfgPath ? ['ca.key', 'ca.crt', 'server.key', 'server.crt', 'fingerprint'].map((f) => `${cfgPath}/${f}`) : [];
  return { onion, identity };
}

/** The fingerprint part of an smp:// or xftp:// address. */
export function fingerprintOf(address: string): string {
  const match = /^(?:smp|xftp):\/\/([A-Za-z0-9_-]+={0,2})[:@]/.exec(address);
  if (!match) throw new Error(`not a server address: ${address}`);
  return match[1]!;
}
