import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as layout from '../../builder/plan/layout.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';

const repo = join(import.meta.dirname, '../..');

/** Every string in the layout module that names something in the image: a path, a file, a variable, a unit. */
function layoutLiterals(): string[] {
  const found = new Set<string>();
  const visit = (value: unknown): void => {
    if (typeof value === 'string') found.add(value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(Object.values(layout).filter((v) => typeof v !== 'function'));
  // A bare word is checked only where it names nothing but the image's layout (NAMES): "simplex" (the relay
  // user) is also the project, and "smp-server" the program every comment and the recipe's docs talk about (the
  // code takes it from RELAY_KINDS).
  return [...found].filter((s) => /[/._]/.test(s) && s.length >= 8);
}

/** Bare names that mean only the layout, and what the layout's functions make (directory patterns, Tor's line). */
const NAMES = [
  layout.XFTP_SERVICE,
  layout.SSH_SERVICE,
  layout.UNITS.export,
  layout.ADMIN_KEY_NAME,
  layout.TOR_USER,
  layout.TIMESYNC_USER,
  layout.RESOLVED_USER,
  '/etc/opt/',
  '/var/opt/',
  'simplex-smp${',
  'simplex-smp@${',
  'descriptor:x25519:',
  'sudoers.d/simplex-pi',
  'client-${',
  layout.SELF_KEY_NAME,
];

/** The layout's ports, as numbers typed in code or a template (`22` only in templates: code has 22 in other senses). */
const PORTS: Array<{ port: number; where: RegExp }> = [
  { port: layout.TOR_SOCKS_PORT, where: /./ },
  { port: layout.TOR_CONTROL_PORT, where: /./ },
  { port: layout.SSH_PORT, where: /^overlays\// },
];

/**
 * Where a layout literal may appear all the same, each for a reason that is not a second definition, and how
 * often: one more copy in the same file fails the test as well.
 */
const ALLOWED: Array<{ file: string; literal: string; count: number; why: string }> = [
  { file: 'builder/image/chroot.ts', literal: '/usr/local/bin', count: 1, why: 'PATH for commands in the chroot, a Debian convention' },
  { file: 'builder/host-check.mjs', literal: '/usr/local/bin', count: 1, why: "PATH on the build host, not the image's" },
  { file: 'test/helpers/host-chroot.ts', literal: '/usr/local/bin', count: 1, why: 'PATH in a chroot of the host' },
  { file: 'test/helpers/synthetic-base.ts', literal: 'ssh.service', count: 3, why: "a base's own unit, as Debian names it" },
  { file: 'ci/setup-host.sh', literal: '/usr/local/bin', count: 1, why: 'the build host, where the pinned Node.js is linked' },
  { file: 'ci/node-pins.txt', literal: '/usr/local/bin', count: 1, why: 'the build host' },
  { file: 'overlays/rootfs/etc/tor/torrc', literal: '/var/lib/tor', count: 1, why: "quotes Debian's own defaults file" },
  { file: 'overlays/rootfs/etc/tor/torrc', literal: 'debian-tor', count: 1, why: "quotes Debian's own defaults file" },
  { file: 'builder/stages/seal.ts', literal: 'debian-tor', count: 1, why: "a comment on Debian's log directory owner" },
  // The Debian base's own files: static (the base is built once and cached for every recipe); a test below pins
  // them to the layout.
  { file: 'overlays/debian-base/rootfs/usr/lib/simplex-pi/growroot', literal: '/var/lib/simplex-pi', count: 2, why: 'a shell script of the Debian base' },
  { file: 'overlays/debian-base/rootfs/usr/lib/simplex-pi/growroot', literal: '/var/lib/simplex-pi/growroot.done', count: 1, why: 'a shell script of the Debian base' },
  { file: 'overlays/debian-base/rootfs/etc/systemd/system/simplex-pi-growroot.service', literal: '/var/lib/simplex-pi', count: 1, why: 'a static unit of the Debian base' },
  { file: 'overlays/debian-base/rootfs/etc/systemd/system/simplex-pi-growroot.service', literal: '/var/lib/simplex-pi/growroot.done', count: 1, why: 'a static unit of the Debian base' },
  { file: 'overlays/debian-base/rootfs/etc/systemd/system/simplex-pi-growroot.service', literal: 'simplex-pi-firstboot.service', count: 1, why: 'a static unit of the Debian base' },
  { file: 'builder/base/debian/customize-hook.sh', literal: 'simplex-pi-growroot.service', count: 1, why: "the Debian base's mmdebstrap hook enables its own unit" },
  { file: 'builder/image/machine-id.ts', literal: 'simplex-pi-growroot.service', count: 1, why: 'a comment on why the Debian base needs no systemd first boot' },
  { file: 'builder/inspect/inspect-base.ts', literal: 'ssh.service', count: 1, why: "the units inspect-base looks for in a base, by the base's own names" },
];

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Each copy of a layout literal in `text` (a file of the repository) beyond what ALLOWED grants: `file:line: literal`. */
function copiesIn(file: string, text: string): string[] {
  const found: string[] = [];
  const report = (literal: string, pattern: RegExp) => {
    const at = [...text.matchAll(pattern)];
    const allowed = ALLOWED.find((a) => a.file === file && a.literal === literal)?.count ?? 0;
    for (const match of at.slice(allowed)) found.push(`${file}:${text.slice(0, match.index).split('\n').length}: ${literal}`);
  };
  // As a whole name: "tor.service" is not in "plan.tor.services", "/var/lib/tor" is in "/var/lib/tor/x".
  for (const literal of [...layoutLiterals(), ...NAMES]) {
    report(literal, new RegExp(`(?<![\\w-])${escape(literal)}${/\w$/.test(literal) ? '(?![\\w])' : ''}`, 'g'));
  }
  for (const { port, where } of PORTS) if (where.test(file)) report(String(port), new RegExp(`(?<![\\w.-])${port}(?![\\w.-])`, 'g'));
  return found;
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(repo, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(repo, join(entry.parentPath, entry.name)));
  }
  return out;
}

describe('one source for the image layout (builder/plan/layout.ts)', () => {
  it('no path, file, variable or unit name of the layout is typed anywhere else in builder/, overlays/, ci/ or the test helpers', async () => {
    // The test helpers too: they stand in for the image's side. Test files themselves may pin the layout's values,
    // as a user or the real server sees them, and the fixtures (the stand-in, the VM's agent) play the real
    // server and an outside observer, which must not take our word for a path.
    const helpers = [...(await files('test/helpers')), 'test/e2e/cluster.ts'];
    const sources = [...(await files('builder')), ...(await files('overlays')), ...(await files('ci')), ...helpers].filter((f) => f !== 'builder/plan/layout.ts');
    const found: string[] = [];
    for (const file of sources) found.push(...copiesIn(file, await readFile(join(repo, file), 'utf8')));
    expect(found).toEqual([]);
  });

  it('the check can fail: it finds the copies the layout replaced (as the review found them)', () => {
    const unit = 'Environment=SMP_SERVER_CFG_PATH=/etc/opt/simplex-smp%i\nExecStart=/usr/local/bin/smp-server start\n';
    expect(copiesIn('overlays/x.service.hbs', unit)).toEqual(expect.arrayContaining(['overlays/x.service.hbs:1: SMP_SERVER_CFG_PATH', 'overlays/x.service.hbs:1: /etc/opt/', 'overlays/x.service.hbs:2: /usr/local/bin']));
    expect(copiesIn('builder/x.ts', 'for (const s of plan.tor.services) {}')).toEqual([]);
    const device = "export const DONE = '/var/lib/simplex-pi/firstboot.done';\nconst unit = 'tor@default.service';\n";
    expect(copiesIn('builder/device/x.ts', device)).toEqual(expect.arrayContaining(['builder/device/x.ts:1: /var/lib/simplex-pi/firstboot.done', 'builder/device/x.ts:2: tor@default.service']));
    // The names the Pi gives its own client keys, which the recipe schema refuses for the recipe's keys.
    expect(copiesIn('builder/device/x.ts', "newClientKey(`client-${i}`);\nconst SELF = 'simplex-pi-relays';\n")).toEqual(['builder/device/x.ts:1: client-${', 'builder/device/x.ts:2: simplex-pi-relays']);
    // An exception holds only for its own file, and only as often as it says.
    expect(copiesIn('builder/image/other.ts', "PATH: '/usr/local/bin:/usr/bin'")).toEqual(['builder/image/other.ts:1: /usr/local/bin']);
    expect(copiesIn('builder/image/chroot.ts', "PATH: '/usr/local/bin'\nconst x = '/usr/local/bin/smp-server';\n")).toEqual(expect.arrayContaining(['builder/image/chroot.ts:2: /usr/local/bin']));
    // Bare names and ports.
    expect(copiesIn('builder/x.ts', "const dir = `/var/lib/tor/simplex-xftp`; // 9050\n")).toEqual(expect.arrayContaining(['builder/x.ts:1: simplex-xftp', 'builder/x.ts:1: 9050']));
    expect(copiesIn('overlays/x.hbs', 'tcp dport 22 accept\n')).toEqual(['overlays/x.hbs:1: 22']);
    expect(copiesIn('builder/x.ts', "const suffix = 'ubuntu-22_04'; const n = 22;\n")).toEqual([]);
  });

  it('every exception is still needed, as often as it says (an unused one would hide a new copy)', async () => {
    for (const { file, literal, count } of ALLOWED) expect((await readFile(join(repo, file), 'utf8')).split(literal).length - 1, `${file} ${literal}`).toBeGreaterThanOrEqual(count);
  });

  it('what the overlay tree holds is where the layout says: the relay helpers, the firewall check, the Debian base growroot marker', async () => {
    expect(existsSync(join(repo, 'overlays/rootfs', layout.SET_ASIDE_TORN_RECORD))).toBe(true);
    expect(existsSync(join(repo, 'overlays/rootfs', `${layout.REQUIRE_FIREWALL}.hbs`))).toBe(true);
    expect(existsSync(join(repo, 'overlays/rootfs', layout.REDACT_PASSWORDS))).toBe(true);
    expect(await readFile(join(repo, 'overlays/debian-base/rootfs/usr/lib/simplex-pi/growroot'), 'utf8')).toContain(layout.STATE.growrootDone);
    expect(await readFile(join(repo, 'overlays/debian-base/rootfs/etc/systemd/system', layout.UNITS.growroot), 'utf8')).toContain(`ConditionPathExists=!${layout.STATE.growrootDone}`);
  });

  it('the plan renders every relay from the layout: the paths the units, first boot and status use', () => {
    const plan = resolvePlan(parseRecipe('name: t\nsmp: { instances: 3, local_port_base: 7000 }\nadmin: { ssh: { over_tor: true } }\n', 'test'));
    const relays = relaysOf(plan);
    expect(relays.map((r) => [r.unit, r.cfgPath, r.logPath, r.localPort])).toEqual([
      ['simplex-smp@1.service', '/etc/opt/simplex-smp1', '/var/opt/simplex-smp1', 7000],
      ['simplex-smp@2.service', '/etc/opt/simplex-smp2', '/var/opt/simplex-smp2', 7001],
      ['simplex-smp@3.service', '/etc/opt/simplex-smp3', '/var/opt/simplex-smp3', 7002],
      ['simplex-xftp.service', '/etc/opt/simplex-xftp', '/var/opt/simplex-xftp', 5443],
    ]);
    expect(relays[1]!.env).toEqual({ SMP_SERVER_CFG_PATH: '/etc/opt/simplex-smp2', SMP_SERVER_LOG_PATH: '/var/opt/simplex-smp2' });
    expect(relays[3]!.env).toEqual({ XFTP_SERVER_CFG_PATH: '/etc/opt/simplex-xftp', XFTP_SERVER_LOG_PATH: '/var/opt/simplex-xftp' });
    expect(relays[0]!.binary).toBe('/usr/local/bin/smp-server');
    expect(relays[0]!.savedFiles).toEqual(['/var/opt/simplex-smp1/smp-server-messages.log', '/var/opt/simplex-smp1/smp-server-ntfs.log']);
    expect(plan.reportedUnits.map((u) => [u.unit, u.port])).toEqual([
      ['tor@default.service', undefined],
      ['simplex-smp@1.service', 7000],
      ['simplex-smp@2.service', 7001],
      ['simplex-smp@3.service', 7002],
      ['simplex-xftp.service', 5443],
      ['nftables.service', undefined],
      ['ssh.service', 22],
    ]);
    expect(plan.units).toEqual(['simplex-pi-firstboot.service', 'simplex-pi-export.service', 'simplex-pi-watchdog.timer', 'simplex-smp@1.service', 'simplex-smp@2.service', 'simplex-smp@3.service', 'simplex-xftp.service', 'nftables.service', 'ssh.service']);
  });
});
