import type { BuildPlan, SmpInstance, XftpServer } from './plan.ts';

export type Relay = SmpInstance | XftpServer;

/** Every relay of a plan, SMP first, in the order of their units (no imports beyond types: the device uses it). */
export function relaysOf(plan: BuildPlan): Relay[] {
  return [...plan.smp.instances, ...(plan.xftp ? [plan.xftp] : [])];
}
