import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import { chrootRun } from '../image/chroot.ts';
import type { BaseImage } from '../base/types.ts';
import { type InitFormatChoice, chooseInitFormat, detectInitFormat } from '../base/init-format.ts';
import { skipCloudInitPackageStep } from '../image/cloud-init.ts';
import { routeAptThroughTor } from '../image/apt-sources.ts';
import type { MountedImage } from '../image/mount-image.ts';
import { disarmRenameWizard } from '../image/userconf.ts';
import { maskExposingUnits, turnBluetoothOff } from '../image/exposed-services.ts';
import { checkTimezone } from '../image/zoneinfo.ts';
import { checkAdminUser } from '../image/admin-user.ts';
import { checkFirewallUsers } from '../image/firewall-users.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { imageIds, writeEntries } from '../image/install.ts';
import { OVERLAYS, renderImageFiles } from '../render/render.ts';
import type { StageContext } from '../pipeline/context.ts';

async function userExists(root: string, name: string): Promise<boolean> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
  return passwd.split('\n').some((line) => line.startsWith(`${name}:`));
}

/** The relay user (no login, no home) and, with SSH, the admin who logs in with a key and has no password. */
async function ensureUsers(ctx: StageContext, root: string, plan: BuildPlan): Promise<void> {
  if (!(await userExists(root, plan.relayUser))) {
    await chrootRun(root, ['useradd', '--system', '--user-group', '--home-dir', '/nonexistent', '--no-create-home', '--shell', '/usr/sbin/nologin', plan.relayUser], {
      log: ctx.log,
      what: `create the relay user ${plan.relayUser}`,
    });
  }
  if (plan.ssh.enabled && plan.ssh.authorizedKeys.length && !(await userExists(root, plan.ssh.user))) {
    // Never UID 1000: Raspberry Pi Imager's customisation (userconf, cloud-init, rpi-preseed) renames and
    // re-keys the user with UID 1000, which would take the admin's name and key away from it.
    await chrootRun(root, ['useradd', '--create-home', '--user-group', '--key', 'UID_MIN=1001', '--key', 'GID_MIN=1001', '--groups', 'sudo', '--shell', '/bin/bash', plan.ssh.user], {
      log: ctx.log,
      what: `create the admin user ${plan.ssh.user}`,
    });
    // "*": no password can ever match, yet the account is not "locked", which sshd would refuse even for keys.
    await chrootRun(root, ['usermod', '--password', '*', plan.ssh.user], { log: ctx.log });
  }
}

/** /etc/hosts must resolve the host name, or sudo and others complain on every call. */
export function withHostname(hosts: string, hostname: string): string {
  const lines = hosts.split('\n').filter((line) => !/^127\.0\.1\.1\s/.test(line));
  const at = lines.findIndex((line) => /^127\.0\.0\.1\s/.test(line));
  lines.splice(at + 1, 0, `127.0.1.1\t${hostname}`);
  return lines.join('\n').replace(/\n*$/, '\n');
}

/** Extra directories named by the recipe, copied as they are, owned by root. */
async function copyRecipeOverlays(ctx: StageContext, root: string): Promise<void> {
  for (const source of ctx.plan.overlays) {
    const info = await stat(source).catch(() => undefined);
    if (!info?.isDirectory()) throw new UserError(`recipe overlay ${source} is not a directory`);
    await run('cp', ['--recursive', '--no-target-directory', '--preserve=mode,timestamps', source, root], { log: ctx.log, what: `copy the overlay ${source}` });
  }
}

/** The init_format to publish: what the image's consumers support, Imager's list and the recipe (base/init-format.ts). */
async function imageInitFormat(ctx: StageContext, base: BaseImage, mounted: MountedImage): Promise<InitFormatChoice> {
  const detected = await detectInitFormat(mounted.root, mounted.bootPath);
  const recipe = ctx.plan.base.provider === 'debian' ? undefined : ctx.plan.base.init_format;
  const choice = chooseInitFormat({ detected, listed: base.listedInitFormat, recipe, base: base.description });
  ctx.log.info(`init_format ${choice.format || '""'}: ${choice.reason}`);
  if (choice.warning) ctx.warn(choice.warning);
  return choice;
}

/**
 * configure: Raspberry Pi Imager's init_format for this image (decided with the image in hand, handed on to emit),
 * the time zone checked against the image's tzdata, the accounts the firewall names checked against its
 * /etc/passwd (firewall-users.ts says why), the relay user, the rendered configuration (nearly the same files
 * `simplex-pi render` writes: the firewall may name accounts only this image is known to have), the recipe's own
 * overlays, the apt sources rewritten to go through Tor (outbound tor-only), the host name, cloud-init's package
 * step left out (cloud-init.ts says why), Raspberry Pi OS's first-user wizard disarmed (userconf.ts), avahi and
 * Bluetooth off (exposed-services.ts), and the relay units enabled.
 */
export async function configureStage(ctx: StageContext, { base, mounted }: { base: BaseImage; mounted: MountedImage }): Promise<{ initFormat: InitFormatChoice }> {
  const { plan } = ctx;
  const root = mounted.root;
  // Decided first: a base whose Imager list entry names a consumer it lacks is refused before anything is written.
  const initFormat = await imageInitFormat(ctx, base, mounted);
  await checkTimezone(root, plan.timezone);
  // Before anything is written: an account of the image's own services must never become the sudo-without-password admin.
  if (plan.ssh.enabled && plan.ssh.authorizedKeys.length) await checkAdminUser(root, plan.ssh.user);
  // The firewall may name only accounts the image has: one it lacks and the ruleset does not load at boot.
  const users = await checkFirewallUsers(root, plan);
  await ensureUsers(ctx, root, plan);
  const entries = await renderImageFiles(plan, OVERLAYS, { users });
  await writeEntries(root, entries, await imageIds(root));
  for (const entry of entries) ctx.log.info(`wrote ${entry.path} (${entry.kind} ${entry.mode.toString(8)} ${entry.owner}:${entry.group})`);
  await copyRecipeOverlays(ctx, root);
  // After the recipe's overlays, which may bring sources of their own. The build used the sources as the base had
  // them; the Pi, which lets only Tor out, must reach the archives through Tor (apt-sources.ts).
  if (plan.network.outbound === 'tor-only') {
    for (const line of await routeAptThroughTor(root)) ctx.log.info(`apt through Tor: ${line}`);
  }
  const hosts = join(root, 'etc/hosts');
  await writeFile(hosts, withHostname(await readFile(hosts, 'utf8').catch(() => '127.0.0.1\tlocalhost\n'), plan.hostname));
  for (const warning of await skipCloudInitPackageStep(root)) ctx.warn(warning);
  const systemctl = (args: string[]) => chrootRun(root, ['systemctl', ...args], { log: ctx.log, what: `systemctl ${args.join(' ')} in the image` });
  if (await disarmRenameWizard(root, systemctl)) ctx.log.info("disarmed Raspberry Pi OS's first-user wizard (userconfig.service off, getty@tty1 on)");
  const masked = await maskExposingUnits(root, systemctl);
  for (const { unit, why } of masked) ctx.log.info(`masked ${unit}: ${why}`);
  if (!masked.length) ctx.log.info('the base has no avahi or Bluetooth units to mask');
  ctx.log.info(await turnBluetoothOff(root, mounted.bootPath));
  await chrootRun(root, ['systemctl', 'enable', ...plan.units], { log: ctx.log, what: 'enable the relay units' });
  return { initFormat };
}
