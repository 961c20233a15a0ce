import { bundleDeviceProgram } from '../device/bundle.ts';
import type { MountedImage } from '../image/mount-image.ts';
import { writeEntries } from '../image/install.ts';
import type { StageContext } from '../pipeline/context.ts';
import type { NoOutput } from '../pipeline/stage-list.ts';
import { DEVICE_COMMAND, DEVICE_PROGRAM } from '../plan/layout.ts';

/**
 * install-device: the device program (builder/device, bundled to one .mjs) and the `simplex-pi` command that runs
 * it with the image's own Node. It runs on the Pi; its first-boot unit (UNITS.firstboot) is part of the rendered
 * configuration and enabled by configure.
 */
export async function installDeviceStage(ctx: StageContext, { mounted }: { mounted: MountedImage }): Promise<NoOutput> {
  ctx.status('bundling the device program');
  const program = await bundleDeviceProgram();
  await writeEntries(mounted.root, [
    { path: DEVICE_PROGRAM, kind: 'file', content: Buffer.from(program), mode: 0o644, owner: 'root', group: 'root' },
    { path: DEVICE_COMMAND, kind: 'file', content: Buffer.from(`#!/bin/sh\nexec /usr/bin/node ${DEVICE_PROGRAM} "$@"\n`), mode: 0o755, owner: 'root', group: 'root' },
  ], { uid: () => 0, gid: () => 0 });
  ctx.log.info(`installed ${DEVICE_PROGRAM} (${program.length} bytes) and ${DEVICE_COMMAND}`);
  return {};
}
