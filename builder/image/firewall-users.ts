import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { parsePasswd } from '../inspect/parse.ts';
import { TIMESYNC_USER, TOR_USER } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';

/**
 * The firewall names accounts (`meta skuid "name"`), and nft looks each name up when it loads the ruleset at boot:
 * one name the image lacks and nothing loads, so the Pi has no firewall, and (failing closed) no Tor, relays or
 * SSH either. So the ruleset may name only accounts the image has. These it always names with outbound tor-only;
 * systemd-resolved's is named only where the image has it (render.ts).
 */
const REQUIRED: ReadonlyArray<{ user: string; why: string }> = [
  {
    user: TOR_USER,
    why: "tor's package creates it, and the packages stage installs tor: that step did not do its work. Build again; if it happens again, it is a bug",
  },
  {
    user: TIMESYNC_USER,
    why:
      'systemd-timesyncd is not installed. With network.outbound: tor-only the firewall lets only systemd-timesyncd set the clock ' +
      'over the network (Tor does not work with a wrong clock), and a ruleset naming an account the image lacks does not load at all. ' +
      'Use a base with systemd-timesyncd (Raspberry Pi OS and the debian base have it), or set network.outbound: open',
  },
];

/** Why a tor-only ruleset could not load in an image whose /etc/passwd is `passwd`, or undefined when it can. */
export function firewallUsersProblem(passwd: string, plan: BuildPlan): string | undefined {
  if (plan.network.outbound !== 'tor-only') return undefined;
  const names = new Set(parsePasswd(passwd).map((e) => e.name));
  const missing = REQUIRED.filter((r) => !names.has(r.user));
  if (!missing.length) return undefined;
  return missing.map((m) => `the image has no "${m.user}" account: ${m.why}.`).join('\n');
}

/**
 * configure, before anything is written: the image's accounts, for the render to name only those; refused when
 * one the firewall cannot do without is missing. Read from /etc/passwd itself, as nft reads it at boot (before
 * any service could add an account).
 */
export async function checkFirewallUsers(root: string, plan: BuildPlan): Promise<ReadonlySet<string>> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
  const problem = firewallUsersProblem(passwd, plan);
  if (problem) throw new UserError(problem);
  return new Set(parsePasswd(passwd).map((e) => e.name));
}
