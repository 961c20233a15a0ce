import { dirname } from 'node:path';
import { RELAY_RELEASES_DIR, STATE_DIR, TOR_DIR, UPDATE_LOCK } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';

/**
 * The paths the units' sandboxes are made of, from the plan: templates get it as `sandbox`
 * (overlays/partials/relay-sandbox.hbs, the first-boot unit). Every path here exists in the image (render.ts
 * planEntries makes the relays' directories; Debian's tor package makes TOR_DIR): systemd refuses to start a
 * unit whose sandbox names a path that is missing, rather than run it with less of a sandbox.
 */
export interface UnitSandbox {
  /**
   * The directories that hold the relays' own directories (their configuration, state and XFTP files
   * directories' parents). All relays run as one user, so file permissions cannot keep one relay out of
   * another's keys: each relay unit covers these with an empty read-only tmpfs and binds back only its own.
   */
  relayParents: string[];
  /**
   * Everything first boot writes, its unit's ReadWritePaths=: Tor's directory (onion keys, client authorization),
   * each relay's configuration and state directories (init runs as the relay user in the same sandbox), and the
   * XFTP files directory's parent, so a card where the files directory is gone gets it again. The state
   * directory is the unit's StateDirectory= (systemd makes it).
   */
  firstbootWritable: string[];
  /**
   * Everything a relay update writes, its unit's ReadWritePaths=: the releases side by side (the new one, the
   * current-release link), each relay's configuration (its INI, migrated) and state directory (the new release's
   * init makes its INI template there, in a scratch directory it removes), the state directory (its log) and
   * UPDATE_LOCK's directory.
   */
  updateWritable: string[];
}

const unique = (paths: string[]): string[] => [...new Set(paths)];

export function unitSandbox(plan: BuildPlan): UnitSandbox {
  const relays = relaysOf(plan);
  return {
    relayParents: unique(relays.flatMap((r) => [r.cfgPath, ...r.writablePaths].map((path) => dirname(path)))).sort(),
    updateWritable: unique([RELAY_RELEASES_DIR, STATE_DIR, dirname(UPDATE_LOCK), ...relays.flatMap((r) => [r.cfgPath, r.logPath])]),
    firstbootWritable: unique([
      TOR_DIR,
      ...relays.flatMap((r) => [r.cfgPath, ...r.writablePaths.map((path) => (r.kind === 'xftp' && path === r.filesPath ? dirname(path) : path))]),
    ]),
  };
}
