import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ProbeTarget, type Socks, probeService } from '../../builder/device/relay-probe.ts';
import type { Health } from '../../builder/device/status.ts';
import { addressFingerprint } from '../../builder/device/watchdog.ts';
import type { WatchdogEvent } from '../../builder/device/watchdog-policy.ts';
import type { TorNetwork } from '../helpers/tor-network.ts';
import type { Vm } from '../helpers/vm.ts';
import type { UnitState } from './cluster.ts';

/**
 * The e2e image in the suite's private Tor network (issue 15), shared by the boot test (test/e2e/boot.test.ts)
 * and the benchmark (ci/bench.ts): the overlay that points the image's Tor at the network, the recipe lines that
 * make the watchdog fast enough for a test, and reaching every address as a member's app does.
 */

/** A watchdog round a minute (the shipped default is 600 s), so detection and steps fit in a test. */
export const TOR_TEST_RECIPE = ['watchdog: { interval_seconds: 60 }'];

/**
 * The test recipe's overlay, and only it, points the image's Tor at the private network (TestingTorNetwork, its
 * authorities): with no network, as in most boot tests, that Tor simply never connects.
 */
export async function torOverlay(dir: string, network: TorNetwork): Promise<string> {
  const overlay = join(dir, 'tor-overlay');
  await mkdir(join(overlay, 'etc/tor/torrc.d'), { recursive: true });
  await writeFile(join(overlay, 'etc/tor/torrc.d/zz-private-network.conf'), `# TEST OVERLAY ONLY (test/e2e/tor-scenario.ts): the suite's private Tor network.\n${network.clientTorrc}`);
  return overlay;
}

/** An address off the stick, as a probe target: the three parts a member's app reads from it. */
export function targetOf(address: string): ProbeTarget {
  const match = /^(smp|xftp):\/\/[^@]+@([a-z2-7]{56}\.onion):(\d+)$/.exec(address);
  if (!match) throw new Error(`not an onion relay address with a port: ${address}`);
  return { kind: match[1] as 'smp' | 'xftp', host: match[2]!, port: Number(match[3]), fingerprint: addressFingerprint(address) };
}

/** Client-authorization keys from a stick into a directory a Tor client reads (ClientOnionAuthDir). */
export async function authDirOf(dir: string, files: ReadonlyMap<string, Buffer>): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, content] of files) await writeFile(join(dir, name.split('/').pop()!), content, { mode: 0o600 });
  return dir;
}

/**
 * Probe every target through `socks` until each has answered or `timeoutMs` is over; when each first answered,
 * in seconds since `since` (a power-on).
 */
export async function reachEvery(
  targets: ReadonlyMap<string, ProbeTarget>,
  socks: Socks,
  since: number,
  timeoutMs: number,
): Promise<{ reached: Map<string, { detail: string; seconds: number }>; failures: Map<string, string> }> {
  const reached = new Map<string, { detail: string; seconds: number }>();
  const failures = new Map<string, string>();
  const deadline = Date.now() + timeoutMs;
  while (reached.size < targets.size && Date.now() < deadline) {
    await Promise.all(
      [...targets].filter(([name]) => !reached.has(name)).map(async ([name, target]) => {
        const result = await probeService(target, socks, 90_000);
        if (result.ok) reached.set(name, { detail: result.detail, seconds: (Date.now() - since) / 1000 });
        else failures.set(name, `${result.stage}: ${result.error}`);
      }),
    );
    if (reached.size < targets.size) await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  for (const name of reached.keys()) failures.delete(name);
  return { reached, failures };
}

export interface WatchdogView {
  events: WatchdogEvent[];
  journal: string;
  units: Record<string, UnitState>;
}

/** The agent's view of the watchdog (test/e2e/overlay agent.mjs `watchdog`), and `status --json`. */
export const watchdogOf = (vm: Vm) => vm.report<WatchdogView>('watchdog', 60_000);
export const healthOf = (vm: Vm) => vm.report<Health>('status-json', 120_000);

/** Ask the watchdog's view until `done` holds or `timeoutMs` is over; the last view either way. */
export async function watchdogUntil(vm: Vm, done: (view: WatchdogView) => boolean, timeoutMs: number): Promise<WatchdogView> {
  const deadline = Date.now() + timeoutMs;
  let view = await watchdogOf(vm);
  while (!done(view) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    view = await watchdogOf(vm);
  }
  return view;
}

/** Until every named service has been reached by the watchdog's rounds; the states last seen. */
export async function watchdogAllOk(vm: Vm, names: readonly string[], timeoutMs: number): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  const states = async () => {
    const { watchdog } = await healthOf(vm);
    return 'services' in watchdog ? Object.fromEntries(names.map((n) => [n, watchdog.services[n]?.state ?? 'absent'])) : { error: watchdog.error };
  };
  let now = await states();
  while (!names.every((n) => now[n] === 'ok') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    now = await states();
  }
  return now;
}

/** Seconds from `since` to the first `event` of `service` in `events` at or after it; undefined if none. */
export function secondsTo(events: readonly WatchdogEvent[], service: string, event: WatchdogEvent['event'], since: number): number | undefined {
  const found = events.find((e) => e.service === service && e.event === event && Date.parse(e.at) >= since - 5000);
  return found ? (Date.parse(found.at) - since) / 1000 : undefined;
}
