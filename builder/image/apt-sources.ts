import { lstat, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { APT_SOURCES_DIR, APT_SOURCES_LIST } from '../plan/layout.ts';

/**
 * The image's apt sources, carried through Tor (network.outbound tor-only): the firewall lets nothing but Tor out,
 * so a plain http:// source could only fail. apt's `tor+http://` and `tor+https://` schemes (apt-transport-tor: only
 * symlinks to apt's own http and https methods; apt itself talks SOCKS5h to Tor, so names are resolved inside Tor)
 * reach the same archive through Tor. Debian's archive and security archive are onion services, so their traffic
 * never leaves Tor; every other archive (Raspberry Pi's, a recipe's own mirror) is reached through a Tor exit.
 * docs/security-updates.md has the sources of every fact used here.
 */

/**
 * Debian's own onion services, as apt-transport-tor 0.5's README (bookworm and trixie alike) lists them, taken from
 * https://onion.debian.org: ftp.debian.org's (whose /debian is the archive deb.debian.org serves) and
 * security.debian.org's (whose /debian-security is the security archive). No published list gives deb.debian.org's
 * /debian-security path an onion of its own, so the security archive always goes to security.debian.org's.
 */
export const DEBIAN_ONIONS = {
  archive: '2s4yqjx5ul6okpp3f2gaunr2syex5jgbfpfvhxxbbjwnrsvbk5v3qbid.onion',
  security: '5ajw6aqf3ep7sijnscdzw77t7xq4xjpsy335yb2wiwgouo7yfxtjlmid.onion',
} as const;

/** Hosts that serve Debian's archive at /debian and its security archive at /debian-security. */
const DEBIAN_HOSTS = new Set(['deb.debian.org', 'ftp.debian.org', 'security.debian.org']);

/** Schemes apt uses without any network: left as they are. */
const LOCAL_SCHEMES = new Set(['file:', 'cdrom:', 'copy:']);

/** Is this source URI one apt would fetch over the clearnet (plain http or https)? */
export function isClearnetUri(uri: string): boolean {
  return /^https?:\/\//i.test(uri);
}

/**
 * One source URI as apt reaches it through Tor: Debian's archives at their onion services, any other http(s)
 * archive with apt's tor+ scheme (through an exit), tor+ and local URIs unchanged. Anything else (mirror+ lists,
 * whose mirrors apt would fetch without Tor) is refused: the user must change it.
 */
export function torUri(uri: string, where: string): string {
  if (/^tor\+/i.test(uri)) return uri;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new UserError(`${where}: "${uri}" is not a URI apt can use; fix the base image's apt sources`);
  }
  if (LOCAL_SCHEMES.has(url.protocol)) return uri;
  if (!isClearnetUri(uri)) {
    throw new UserError(
      `${where}: the source ${uri} cannot be carried through Tor (network.outbound tor-only lets nothing else out); ` +
        'use an http:// or https:// source in the base, or set network.outbound: open',
    );
  }
  const path = url.pathname.replace(/\/+$/, '');
  const slash = url.pathname.endsWith('/') ? '/' : '';
  if (DEBIAN_HOSTS.has(url.hostname.toLowerCase()) && !url.port) {
    if (path === '/debian' && url.hostname.toLowerCase() !== 'security.debian.org') return `tor+http://${DEBIAN_ONIONS.archive}/debian${slash}`;
    if (path === '/debian-security') return `tor+http://${DEBIAN_ONIONS.security}/debian-security${slash}`;
  }
  return `tor+${uri}`;
}

/** A sources.list (one-line format): every `deb`/`deb-src` line's URI through torUri, comments and options kept. */
export function torSourcesList(text: string, where: string): string {
  return text
    .split('\n')
    .map((line) => {
      const match = /^(\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?)(\S+)(.*)$/.exec(line);
      return match ? `${match[1]}${torUri(match[2]!, where)}${match[3]}` : line;
    })
    .join('\n');
}

/** A deb822 .sources file: every value of every `URIs:` field (continuation lines too) through torUri. */
export function torDeb822(text: string, where: string): string {
  let inUris = false;
  return text
    .split('\n')
    .map((line) => {
      const field = /^([A-Za-z0-9-]+):(.*)$/.exec(line);
      if (field) inUris = field[1]!.toLowerCase() === 'uris';
      else if (!/^[ \t]/.test(line)) inUris = false;
      if (!inUris || /^\s*#/.test(line)) return line;
      const [head, values] = field ? [`${field[1]}:`, field[2]!] : ['', line];
      return head + values.replace(/\S+/g, (uri) => torUri(uri, where));
    })
    .join('\n');
}

/** The image's source files apt reads: sources.list, then sources.list.d's *.list and *.sources. */
async function sourceFiles(root: string): Promise<Array<{ path: string; deb822: boolean }>> {
  const files: Array<{ path: string; deb822: boolean }> = [];
  if (await lstat(join(root, APT_SOURCES_LIST)).catch(() => undefined)) files.push({ path: APT_SOURCES_LIST, deb822: false });
  for (const name of (await readdir(join(root, APT_SOURCES_DIR)).catch(() => [] as string[])).sort()) {
    if (name.endsWith('.list')) files.push({ path: `${APT_SOURCES_DIR}/${name}`, deb822: false });
    else if (name.endsWith('.sources')) files.push({ path: `${APT_SOURCES_DIR}/${name}`, deb822: true });
  }
  return files;
}

/** Every URI apt would fetch from, with the file it is in: what `tor-only` images must never ship in the clear. */
export function sourceUris(text: string, deb822: boolean): string[] {
  if (deb822) {
    const uris: string[] = [];
    let inUris = false;
    for (const line of text.split('\n')) {
      const field = /^([A-Za-z0-9-]+):(.*)$/.exec(line);
      if (field) inUris = field[1]!.toLowerCase() === 'uris';
      else if (!/^[ \t]/.test(line)) inUris = false;
      if (inUris && !/^\s*#/.test(line)) uris.push(...(field ? field[2]! : line).split(/\s+/).filter(Boolean));
    }
    return uris;
  }
  return text.split('\n').flatMap((line) => /^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line)?.[1] ?? []);
}

/**
 * configure, with outbound tor-only: rewrite the mounted image's apt sources in place (the build itself used them
 * as the base had them, on the build host's network). Returns one line per file changed, for the log. Refuses an
 * image without apt's tor method (the packages stage installs apt-transport-tor) and leaves no clearnet URI behind.
 */
export async function routeAptThroughTor(root: string): Promise<string[]> {
  if (!(await lstat(join(root, 'usr/lib/apt/methods/tor+http')).catch(() => undefined))) {
    throw new UserError("the image has no apt method tor+http: apt-transport-tor was not installed by the packages stage, so apt could not reach any archive through Tor");
  }
  const changed: string[] = [];
  for (const { path, deb822 } of await sourceFiles(root)) {
    const text = await readFile(join(root, path), 'utf8');
    const where = `the image's ${path}`;
    const rewritten = deb822 ? torDeb822(text, where) : torSourcesList(text, where);
    const left = sourceUris(rewritten, deb822).filter(isClearnetUri);
    if (left.length) throw new UserError(`${where} still names ${left.join(', ')} after the rewrite to Tor: please report this`);
    if (rewritten === text) continue;
    await writeFile(join(root, path), rewritten);
    changed.push(`${path}: ${[...new Set(sourceUris(rewritten, deb822))].join(' ')}`);
  }
  return changed;
}
