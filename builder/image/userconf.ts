import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Raspberry Pi OS's first-user wizard (userconf-pi). pi-gen leaves it armed in the image (`rename-user -f -s`:
 * getty@tty1 disabled, userconfig.service enabled, an sshd Banner in rename_user.conf): without Imager's
 * customisation, the first boot then asks on the console which user to rename, and multi-user.target waits for an
 * answer. On this appliance it would offer the recipe's admin user, whose SSH keys and sudo rule are keyed on its
 * name. So the build disarms it, as userconf-pi's own cancel-rename does: the wizard off, the console login back.
 */
export const USERCONFIG_UNIT = 'userconfig.service';
const USERCONFIG_ENABLED = `/etc/systemd/system/multi-user.target.wants/${USERCONFIG_UNIT}`;
export const CONSOLE_GETTY = 'getty@tty1.service';
/** The Banner rename-user adds ("SSH may not work until a valid user has been set up"). */
export const RENAME_USER_SSHD = '/etc/ssh/sshd_config.d/rename_user.conf';

export async function renameWizardArmed(root: string): Promise<boolean> {
  return Boolean(await lstat(join(root, USERCONFIG_ENABLED)).catch(() => undefined));
}

/**
 * configure: disarm the wizard if the base has it armed; `systemctl` runs the image's own systemctl. Returns
 * whether there was anything to do.
 */
export async function disarmRenameWizard(root: string, systemctl: (args: string[]) => Promise<unknown>): Promise<boolean> {
  if (!(await renameWizardArmed(root))) return false;
  await systemctl(['disable', USERCONFIG_UNIT]);
  await systemctl(['enable', CONSOLE_GETTY]);
  await rm(join(root, RENAME_USER_SSHD), { force: true });
  return true;
}
