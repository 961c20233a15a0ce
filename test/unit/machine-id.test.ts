import { lstat, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyMachineId, firstBootOf } from '../../builder/image/machine-id.ts';
import { cleanTree } from '../../builder/stages/seal.ts';
import { scratch } from '../helpers/env.ts';

const BUILD_ID = '0123456789abcdef0123456789abcdef\n';

/** A mounted tree after the build: a package script gave it a machine ID, and dbus one of its own. */
async function builtTree(): Promise<string> {
  const root = await scratch('machine-id');
  for (const [path, content] of [['etc/machine-id', BUILD_ID], ['var/lib/dbus/machine-id', BUILD_ID]] as const) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

describe('seal keeps /etc/machine-id as the base had it, never the build\'s', () => {
  it('Raspberry Pi OS: "uninitialized" stays, so the first boot is a systemd first boot (rpi-resize grows the filesystem)', async () => {
    const root = await builtTree();
    await cleanTree(root, { kind: 'uninitialized', mode: 0o444 });
    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('uninitialized\n');
    expect(((await stat(join(root, 'etc/machine-id'))).mode & 0o777).toString(8)).toBe('444');
    // dbus's own copy would be the same ID on every card.
    await expect(lstat(join(root, 'var/lib/dbus/machine-id'))).rejects.toThrow(/ENOENT/);
  });

  it('Debian base: the empty file mmdebstrap leaves stays empty (its growth does not depend on a first boot)', async () => {
    const root = await builtTree();
    const warnings = await cleanTree(root, { kind: 'empty', mode: 0o644 });
    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    expect(((await stat(join(root, 'etc/machine-id'))).mode & 0o777).toString(8)).toBe('644');
    expect(warnings).toEqual([]);
  });

  it('no file in the base: none in the image', async () => {
    const root = await builtTree();
    await cleanTree(root, { kind: 'absent' });
    await expect(lstat(join(root, 'etc/machine-id'))).rejects.toThrow(/ENOENT/);
  });

  it('a base that carries a real ID is sealed with an empty one, and the user is told', async () => {
    const root = await builtTree();
    const warnings = await cleanTree(root, { kind: 'id', mode: 0o444 });
    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    expect(warnings).toEqual([expect.stringMatching(/the base image has a machine ID in \/etc\/machine-id/)]);
  });

  it('keeps dbus\'s symlink to /etc/machine-id (it holds no ID of its own)', async () => {
    const root = await builtTree();
    const dbus = join(root, 'var/lib/dbus/machine-id');
    await rm(dbus);
    await symlink('/etc/machine-id', dbus);
    await cleanTree(root, { kind: 'uninitialized', mode: 0o444 });
    expect(await readlink(dbus)).toBe('/etc/machine-id');
  });

  it('tells the kinds apart', () => {
    expect(classifyMachineId({ kind: 'file', content: 'uninitialized\n', mode: 0o444 })).toEqual({ kind: 'uninitialized', mode: 0o444 });
    expect(classifyMachineId({ kind: 'file', content: '', mode: 0o644 })).toEqual({ kind: 'empty', mode: 0o644 });
    expect(classifyMachineId({ kind: 'file', content: BUILD_ID, mode: 0o444 })).toEqual({ kind: 'id', mode: 0o444 });
    expect(classifyMachineId({ kind: 'absent' })).toEqual({ kind: 'absent' });
    expect(classifyMachineId({ kind: 'symlink', target: '/run/machine-id' })).toEqual({ kind: 'symlink', target: '/run/machine-id' });
  });

  it('says which kinds make the first boot a systemd first boot (machine-id(5)): none or "uninitialized", not empty or an ID', () => {
    expect(firstBootOf({ kind: 'absent' }).firstBoot).toBe(true);
    expect(firstBootOf({ kind: 'uninitialized', mode: 0o444 }).firstBoot).toBe(true);
    expect(firstBootOf({ kind: 'empty', mode: 0o444 })).toMatchObject({ firstBoot: false, meaning: expect.stringContaining('rpi-resize.service') });
    expect(firstBootOf({ kind: 'id', mode: 0o444 }).firstBoot).toBe(false);
    expect(firstBootOf({ kind: 'symlink', target: '/run/machine-id' }).meaning).toContain('/run/machine-id');
  });
});
