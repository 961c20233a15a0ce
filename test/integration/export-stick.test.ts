import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encryptTo, tarOf } from '../../builder/device/encrypt.ts';
import { StickRefused, folderHoldsSecrets, writeToStick } from '../../builder/device/stick-writer.ts';
import { diskSequence } from '../../builder/device/usb-sticks.ts';
import { sha256File } from '../../builder/hash.ts';
import { isRoot, scratch } from '../helpers/env.ts';
import { listStick, readStickFile } from '../helpers/stick.ts';

/**
 * The stick writer on a real FAT filesystem behind a real block device (a loop device: the USB check is the
 * policy's, device/export.ts, proven in the VM), and the encrypted export opened with the standard age CLI.
 */

const attached: string[] = [];
afterEach(() => {
  for (const device of attached.splice(0)) execFileSync('losetup', ['--detach', device]);
});

async function stickImage(dir: string, name: string, label: string): Promise<{ path: string; device: string }> {
  const path = join(dir, `${name}.img`);
  execFileSync('truncate', ['-s', '64M', path]);
  execFileSync('mkfs.vfat', ['-n', label, path]);
  const device = execFileSync('losetup', ['--find', '--show', path]).toString().trim();
  attached.push(device);
  return { path, device };
}

describe.runIf(isRoot)('writing an export to a stick', () => {
  it('writes the whole folder in one mtools run, replaces an earlier export, and never writes a stick with another label', async () => {
    const dir = await scratch('export-stick');
    const good = await stickImage(dir, 'good', 'SIMPLEX');
    const files = [
      { path: 'README.txt', content: 'first\r\n' },
      { path: 'qr/smp1.png', content: Buffer.from([0x89, 0x50, 0x4e, 0x47]) },
      { path: 'client-auth/alice/smp1.auth_private', content: 'key\n' },
    ];
    expect(await folderHoldsSecrets(good.device, 'simplex-pi-kitchen')).toBe(false);
    await writeToStick(good.device, 'SIMPLEX', 'simplex-pi-kitchen', files, { diskseq: await diskSequence(good.device) });
    // A later export that writes only the README: the secret files of the first are still there, and seen.
    expect(await folderHoldsSecrets(good.device, 'simplex-pi-kitchen')).toBe(true);
    await writeToStick(good.device, 'SIMPLEX', 'simplex-pi-kitchen', [{ path: 'README.txt', content: 'second\r\n' }]);
    // The stick chosen from udev's listing had another disk sequence number (it was swapped since): nothing is written.
    const swapped = await writeToStick(good.device, 'SIMPLEX', 'simplex-pi-kitchen', [{ path: 'README.txt', content: 'third\r\n' }], { diskseq: '1' }).catch((e: unknown) => e);
    expect((swapped as Error).message).toBe(`${good.device} is not the stick that was chosen (it was replaced since): not writing to it`);
    const otherFs = await writeToStick(good.device, 'SIMPLEX', 'simplex-pi-kitchen', [{ path: 'README.txt', content: 'third\r\n' }], { fsUuid: '0000-0000' }).catch((e: unknown) => e);
    expect((otherFs as Error).message).toBe(`${good.device} is not the stick that was chosen (another filesystem): not writing to it`);
    execFileSync('losetup', ['--detach', good.device]);
    attached.splice(attached.indexOf(good.device), 1);
    expect(listStick(good.path).filter((p) => !p.endsWith('/')).sort()).toEqual(
      ['::/simplex-pi-kitchen/README.txt', '::/simplex-pi-kitchen/client-auth/alice/smp1.auth_private', '::/simplex-pi-kitchen/qr/smp1.png'].sort(),
    );
    expect(readStickFile(good.path, 'simplex-pi-kitchen/README.txt').toString()).toBe('second\r\n');
    expect(readStickFile(good.path, 'simplex-pi-kitchen/qr/smp1.png')).toEqual(files[1]!.content);

    const other = await stickImage(dir, 'other', 'BACKUP');
    const before = await sha256File(other.path);
    const refused = await writeToStick(other.device, 'SIMPLEX', 'simplex-pi-kitchen', files).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StickRefused);
    expect((refused as Error).message).toBe(`${other.device} is labelled "BACKUP", not SIMPLEX: not writing to it`);
    expect(await sha256File(other.path)).toBe(before);
  });

  it('encrypts the secret files to an age recipient so that only `age -d` with the identity opens them', async () => {
    const dir = await scratch('export-age');
    execFileSync('age-keygen', ['-o', join(dir, 'identity.txt')], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', join(dir, 'identity.txt')]).toString().trim();
    const files = [
      { path: 'addresses.txt', content: 'smp1\tsmp://fp:secret-password@x.onion\r\n' },
      { path: 'client-auth/alice/smp1.auth_private', content: 'x:descriptor:x25519:KEY\n' },
    ];
    const sealed = await encryptTo(recipient, await tarOf(files, new Date('2026-01-01T00:00:00Z')));
    expect(Buffer.from(sealed).toString('latin1')).not.toContain('secret-password');
    await writeFile(join(dir, 'secrets.tar.age'), sealed);
    execFileSync('age', ['-d', '-i', join(dir, 'identity.txt'), '-o', join(dir, 'secrets.tar'), join(dir, 'secrets.tar.age')]);
    await mkdir(join(dir, 'out'));
    execFileSync('tar', ['-xf', join(dir, 'secrets.tar'), '-C', join(dir, 'out')]);
    for (const file of files) expect(await readFile(join(dir, 'out', file.path), 'utf8')).toBe(file.content);
    // Another identity cannot open it.
    execFileSync('age-keygen', ['-o', join(dir, 'stranger.txt')], { stdio: 'ignore' });
    expect(() => execFileSync('age', ['-d', '-i', join(dir, 'stranger.txt'), join(dir, 'secrets.tar.age')], { stdio: 'pipe' })).toThrow(/no identity matched/);
  });
});
