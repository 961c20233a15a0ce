import { hostname } from 'node:os';
import type { BuildPlan } from '../plan/plan.ts';

/**
 * The host name the Pi has now, which names the stick's folder and heads `status`: Raspberry Pi Imager may have
 * set another than the recipe's. Only characters every FAT driver takes; the recipe's name if the kernel has none.
 */
export function runningHostname(plan: Pick<BuildPlan, 'hostname'>, current = hostname()): string {
  const safe = current.trim().replace(/[^A-Za-z0-9._-]/g, '-');
  return safe || plan.hostname;
}
