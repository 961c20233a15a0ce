import { readFile, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { UserError } from '../errors.ts';
import { ZONEINFO } from '../image/zoneinfo.ts';
import * as layout from '../plan/layout.ts';
import { AUTHORIZED_CLIENTS, PLAN_PATH, RESOLVED_USER, SSH_AUTHORIZED_KEYS_DIR, TOR_USER, adminSudoers, authorizedClientLine } from '../plan/layout.ts';
import type { BuildPlan, RelayServer } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { unitSandbox } from './sandbox.ts';
import { walkTree } from './tree.ts';

export const OVERLAYS = join(dirname(fileURLToPath(import.meta.url)), '../../overlays');
export { PLAN_PATH };

/** A template named `[relay.unit].hbs` is rendered once per relay, into a file named after that relay's unit. */
const PER_RELAY = '[relay.unit].hbs';

/** One thing the configure stage puts into the image: a file, a directory or a symlink, with its owner and mode. */
export interface ImageEntry {
  /** Path inside the image, starting with /. */
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  content?: Buffer;
  target?: string;
  mode: number;
  /** User and group names, resolved against the image's own /etc/passwd and /etc/group when written. */
  owner: string;
  group: string;
}

const file = (path: string, content: string | Buffer, mode = 0o644, owner = 'root', group = owner): ImageEntry => ({
  path,
  kind: 'file',
  content: Buffer.isBuffer(content) ? content : Buffer.from(content),
  mode,
  owner,
  group,
});
const dir = (path: string, mode: number, owner = 'root', group = owner): ImageEntry => ({ path, kind: 'dir', mode, owner, group });

/**
 * What the render knows of the image it is for: nothing for `simplex-pi render`, the image's own accounts in a
 * build (configure reads them from its /etc/passwd).
 */
export interface ImageFacts {
  users?: ReadonlySet<string>;
}

/**
 * What the firewall template may name beyond what every image has (image/firewall-users.ts says why it must not
 * name more): systemd-resolved's account only in an image that has it. Without an image, the ruleset names only
 * what configure requires, so the file `render` writes loads on any base a build accepts.
 */
function firewallContext(image: ImageFacts): { resolver: boolean } {
  return { resolver: image.users?.has(RESOLVED_USER) ?? false };
}

/**
 * Handlebars for configuration files: no HTML escaping, a missing value is an error rather than an empty string,
 * and the partials in overlays/partials/ (shared blocks such as the relay sandbox).
 */
async function engine(overlays: string): Promise<typeof Handlebars> {
  const hb = Handlebars.create();
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('join', (list: unknown[], separator: unknown) => list.join(typeof separator === 'string' ? separator : ' '));
  // A value on an Exec line, as one argument: systemd reads `%` as a specifier, `$` as a variable, and splits on unquoted spaces.
  hb.registerHelper('execArg', (value: unknown) => `"${String(value).replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('%', '%%').replaceAll('$', () => '$$')}"`);
  const partials = join(overlays, 'partials');
  for (const name of await readdir(partials).catch(() => [] as string[])) {
    if (name.endsWith('.hbs')) hb.registerPartial(name.slice(0, -4), await readFile(join(partials, name), 'utf8'));
  }
  return hb;
}

/**
 * Render an overlay tree: `*.hbs` files through handlebars with the plan (the `.hbs` suffix dropped), every other
 * file as it is. A template that renders to nothing but whitespace is left out: that is how a file exists only
 * when the recipe asks for it (sshd settings only with SSH). Modes come from the repository (git keeps the
 * executable bit); everything is owned by root. Templates get `plan`, `layout` and `sandbox` (the paths the units'
 * sandboxes are made of, render/sandbox.ts); `[relay.unit].hbs` also gets its `relay`.
 */
export async function renderOverlay(overlayDir: string, plan: BuildPlan, overlays = OVERLAYS, image: ImageFacts = {}): Promise<ImageEntry[]> {
  const hb = await engine(overlays);
  const sandbox = unitSandbox(plan);
  const firewall = firewallContext(image);
  const entries: ImageEntry[] = [];
  for (const entry of await walkTree(overlayDir)) {
    if (entry.kind !== 'file') continue;
    const source = await readFile(join(overlayDir, entry.path));
    const mode = entry.mode & 0o111 ? 0o755 : 0o644;
    if (!entry.path.endsWith('.hbs')) {
      entries.push(file(`/${entry.path}`, source, mode));
      continue;
    }
    const render = (context: { relay?: RelayServer }): string => {
      try {
        return hb.compile(source.toString('utf8'), { noEscape: true, strict: true })({ plan, layout, sandbox, firewall, ...context });
      } catch (error) {
        throw new UserError(`cannot render ${join(overlayDir, entry.path)}: ${(error as Error).message}`);
      }
    };
    const outputs = basename(entry.path) === PER_RELAY
      ? relaysOf(plan).map((relay) => ({ path: join(dirname(entry.path), relay.unit), text: render({ relay }) }))
      : [{ path: entry.path.slice(0, -'.hbs'.length), text: render({}) }];
    for (const { path, text } of outputs) {
      if (!text.trim()) continue;
      // Blank lines left by {{#if}} blocks are squeezed so the files read as if written by hand.
      entries.push(file(`/${path}`, text.replace(/\n{3,}/g, '\n\n').replace(/^\n+/, ''), mode));
    }
  }
  return entries;
}

/** The entries that depend on lists in the recipe, which a template cannot name as files. */
function planEntries(plan: BuildPlan): ImageEntry[] {
  const entries: ImageEntry[] = [file(PLAN_PATH, `${JSON.stringify(plan, null, 2)}\n`)];
  entries.push(file('/etc/timezone', `${plan.timezone}\n`));
  entries.push({ path: '/etc/localtime', kind: 'symlink', target: `${ZONEINFO}/${plan.timezone}`, mode: 0o777, owner: 'root', group: 'root' });
  // State and configuration of each relay: simplexmq's init empties these and fills them as the relay user, but
  // cannot create them under their root-owned parents.
  for (const relay of relaysOf(plan)) {
    entries.push(dir(relay.cfgPath, 0o700, plan.relayUser), dir(relay.logPath, 0o700, plan.relayUser));
  }
  if (plan.xftp) {
    // The XFTP server creates neither its files directory nor its parent (docs/simplexmq-and-tor.md). First boot
    // makes it again should it be gone.
    entries.push(dir(dirname(plan.xftp.filesPath), 0o755), dir(plan.xftp.filesPath, 0o700, plan.relayUser));
  }
  // The Pi's own keys for its relays are made at first boot; Tor refuses a ClientOnionAuthDir it does not own.
  if (plan.tor.clientOnionAuthDir) entries.push(dir(plan.tor.clientOnionAuthDir, 0o700, TOR_USER));
  // Client authorization: public keys only, on the relays' services (SSH's admits only the admin's key, made at first
  // boot). Tor demands its directories be its own and 0700.
  if (plan.tor.clientAuth.keys.length) {
    for (const service of relaysOf(plan).map((relay) => relay.onion)) {
      const clients = `${service.dir}/${AUTHORIZED_CLIENTS}`;
      entries.push(dir(service.dir, 0o700, TOR_USER), dir(clients, 0o700, TOR_USER));
      for (const key of plan.tor.clientAuth.keys) {
        entries.push(file(`${clients}/${key.name}.auth`, authorizedClientLine(key.publicKey), 0o600, TOR_USER));
      }
    }
  }
  // Keys from the recipe go to the admin user; without any, keys come from Raspberry Pi Imager's settings for
  // the user it creates, and no admin user is made.
  if (plan.ssh.enabled && plan.ssh.authorizedKeys.length) {
    entries.push(dir(SSH_AUTHORIZED_KEYS_DIR, 0o755));
    entries.push(file(`${SSH_AUTHORIZED_KEYS_DIR}/${plan.ssh.user}`, plan.ssh.authorizedKeys.map((k) => `${k}\n`).join(''), 0o644));
    // The admin logs in with a key only and has no password, so sudo must not ask for one.
    entries.push(file(adminSudoers(plan.ssh.user), `${plan.ssh.user} ALL=(ALL:ALL) NOPASSWD: ALL\n`, 0o440));
  }
  return entries;
}

/** Everything the configure stage writes into the root filesystem, in the order it is written. */
export async function renderImageFiles(plan: BuildPlan, overlays = OVERLAYS, image: ImageFacts = {}): Promise<ImageEntry[]> {
  return [...(await renderOverlay(join(overlays, 'rootfs'), plan, overlays, image)), ...planEntries(plan)];
}

/** An ls-like listing, for `simplex-pi render` readers: ownership cannot be shown by the files themselves. */
export function listing(entries: readonly ImageEntry[]): string {
  return entries
    .map((e) => `${e.kind === 'dir' ? 'd' : e.kind === 'symlink' ? 'l' : '-'}${e.mode.toString(8).padStart(4, '0')} ${`${e.owner}:${e.group}`.padEnd(24)} ${e.path}${e.target ? ` -> ${e.target}` : ''}`)
    .join('\n')
    .concat('\n');
}
