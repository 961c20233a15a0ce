import { readdir, rm, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { walk } from '../fs-walk.ts';
import { type BaseMachineId, restoreMachineId } from '../image/machine-id.ts';
import type { MountedImage } from '../image/mount-image.ts';
import { recreateRoot } from '../image/recreate-root.ts';
import { settleTree } from '../image/settle-tree.ts';
import { findSecrets } from '../image/secrets.ts';
import type { InstalledPackage } from '../outputs/manifest.ts';
import type { StageContext } from '../pipeline/context.ts';
import type { WorkImage } from './prepare.ts';

export type { InstalledPackage };

export interface SealResult {
  packages: InstalledPackage[];
  rootMiB: number;
}

/** The block size the estimate of the new root filesystem counts in (every base's is 4096; recreate-root reads it). */
const COUNT_BLOCK_SIZE = 4096;

/** Free space left in the root filesystem of the finished image, before first boot grows it to the card. */
export const SEAL_MARGIN_MIB = 256;

/** Paths (inside the image) whose content is build-host state, not the image's: removed, the directory kept. */
const EMPTY_DIRS = ['/var/lib/apt/lists', '/var/cache/apt/archives', '/tmp', '/var/tmp', '/var/log'];
/** Files that identify one machine or hold its secrets; each card makes its own on first boot. */
const REMOVE = [
  '/var/lib/systemd/random-seed',
  '/var/lib/systemd/credential.secret',
  '/var/cache/apt/pkgcache.bin',
  '/var/cache/apt/srcpkgcache.bin',
  '/root/.bash_history',
  '/var/cache/ldconfig/aux-cache',
  // debconf's previous databases; the current ones (config.dat, templates.dat) belong to the image.
  '/var/cache/debconf/config.dat-old',
  '/var/cache/debconf/templates.dat-old',
];

async function emptyDir(dir: string, keepDirs: boolean): Promise<void> {
  // A directory the base does not have is nothing to empty.
  await walk(
    dir,
    async ({ full, dirent }) => {
      if (dirent.isDirectory() && keepDirs) return true;
      await rm(full, { recursive: true, force: true });
      return false;
    },
    { skipUnreadable: true },
  );
}

export function parseDpkgQuery(text: string): InstalledPackage[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name = '', version = '', architecture = ''] = line.split('\t');
      return { name, version, architecture };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Remove build leftovers and per-machine state from the mounted tree; /etc/machine-id goes back to what the base
 * had (machine-id.ts says why). Returns warnings for the user.
 */
export async function cleanTree(root: string, baseMachineId: BaseMachineId): Promise<string[]> {
  // Log directories keep their owners and modes (tor's is debian-tor:adm 2750); only files go.
  for (const dir of EMPTY_DIRS) await emptyDir(join(root, dir), dir === '/var/log');
  for (const path of REMOVE) await rm(join(root, path), { force: true });
  const warning = await restoreMachineId(root, baseMachineId);
  const ssh = join(root, 'etc/ssh');
  for (const name of await readdir(ssh).catch(() => [] as string[])) {
    if (name.startsWith('ssh_host_')) await rm(join(ssh, name), { force: true });
  }
  await lstat(join(root, 'usr/sbin/policy-rc.d')).then(
    () => {
      throw new UserError('policy-rc.d is still in the image: services would never start on the Pi');
    },
    () => undefined,
  );
  return warning ? [warning] : [];
}

/**
 * seal: clean, then refuse to go on if any private key or secret is in the tree, record the installed packages,
 * write the boot partition, clamp every time to SOURCE_DATE_EPOCH, unmount, and make the root filesystem anew from
 * the tree (image/recreate-root.ts says why), sized to its content and a margin.
 */
export async function sealStage(ctx: StageContext, { mounted, work }: { mounted: MountedImage; work: WorkImage }): Promise<{ seal: SealResult }> {
  // Restores resolv.conf and removes policy-rc.d before anything is checked.
  await mounted.releaseChroot();
  ctx.status('cleaning');
  for (const warning of await cleanTree(mounted.root, work.baseMachineId)) ctx.warn(warning);
  ctx.status('looking for private keys and secrets');
  const findings = await findSecrets(mounted.root);
  if (findings.length) {
    throw new UserError(
      `refusing to emit: the image contains secrets that every card flashed from it would share:\n` +
        findings.map((f) => `  ${f.path}: ${f.reason}`).join('\n') +
        '\nNothing was written to the output. Remove them (or the overlay or package that adds them) and build again.',
    );
  }
  const { stdout } = await run('dpkg-query', [`--admindir=${join(mounted.root, 'var/lib/dpkg')}`, '--show', '--showformat=${Package}\\t${Version}\\t${Architecture}\\n'], {
    log: ctx.log,
    what: 'list the packages installed in the image',
  });
  const packages = parseDpkgQuery(stdout);
  const epoch = work.sourceDate.epoch;
  ctx.status('writing the boot partition');
  await mounted.commitBoot(epoch);
  ctx.status('clamping file times to SOURCE_DATE_EPOCH');
  const count = await settleTree(mounted.root, epoch, COUNT_BLOCK_SIZE);
  ctx.log.info(`the tree holds ${count.inodes} inodes and ${Math.round(count.dataBytes / 1024 / 1024)} MiB of data blocks`);
  await mounted.release();
  ctx.status('making the root filesystem anew from the tree');
  const { rootMiB } = await recreateRoot({ image: work.path, workDir: ctx.workDir, sourceDateEpoch: epoch, count, marginMiB: SEAL_MARGIN_MIB, log: ctx.log });
  return { seal: { packages, rootMiB } };
}
