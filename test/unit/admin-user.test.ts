import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../builder/errors.ts';
import { checkAdminUser, systemAccountProblem } from '../../builder/image/admin-user.ts';
import { scratch } from '../helpers/env.ts';

/** Lines as Raspberry Pi OS Lite and Debian have them: base-passwd's, the packages', pi-gen's first user, one more person. */
const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  '_apt:x:42:65534::/nonexistent:/usr/sbin/nologin',
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  'systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin',
  'messagebus:x:100:107::/nonexistent:/usr/sbin/nologin',
  'sshd:x:104:65534::/run/sshd:/usr/sbin/nologin',
  // A service of this base that no list of well-known names could know.
  'acme-agent:x:999:996::/var/lib/acme:/usr/sbin/nologin',
  'pi:x:1000:1000:,,,:/home/pi:/bin/bash',
  'carol:x:1001:1001::/home/carol:/bin/bash',
  'hostile:x:60001:60001::/nonexistent:/usr/sbin/nologin',
  '',
].join('\n');

describe("admin.user against the base image's own /etc/passwd", () => {
  it.each([
    ['messagebus', 100],
    ['root', 0],
    ['_apt', 42],
    ['systemd-network', 998],
    ['acme-agent', 999],
    ['nobody', 65534],
    ['hostile', 60001],
  ])('refuses %s, a system account (uid %i), naming the field', (user, uid) => {
    expect(systemAccountProblem(PASSWD, user)).toBe(`recipe.admin.user: "${user}" is a system account of the base image (uid ${uid}); choose another name`);
  });

  it("keeps today's behaviour for a person's account (uid 1000–59999) and for a name the image lacks", () => {
    expect(systemAccountProblem(PASSWD, 'pi')).toBeUndefined();
    expect(systemAccountProblem(PASSWD, 'carol')).toBeUndefined();
    expect(systemAccountProblem(PASSWD, 'admin')).toBeUndefined();
    // A whole name only: "sshd" is not "ssh", "roots" is not "root".
    expect(systemAccountProblem(PASSWD, 'ssh')).toBeUndefined();
    expect(systemAccountProblem(PASSWD, 'roots')).toBeUndefined();
    expect(systemAccountProblem('', 'admin')).toBeUndefined();
  });

  it("reads the image's /etc/passwd and stops with a recipe error", async () => {
    const root = await scratch('admin-user');
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/passwd'), PASSWD);
    await expect(checkAdminUser(root, 'acme-agent')).rejects.toThrow(UserError);
    await expect(checkAdminUser(root, 'acme-agent')).rejects.toThrow('recipe.admin.user: "acme-agent" is a system account of the base image (uid 999); choose another name');
    await expect(checkAdminUser(root, 'carol')).resolves.toBeUndefined();
  });
});
