import { open } from 'node:fs/promises';
import { type WalkEntry, walk } from '../fs-walk.ts';
import { relayDirs } from '../plan/layout.ts';

/**
 * Finds private keys and secrets in an image tree. The image is the same for every card flashed from it, so any
 * secret in it is shared by every relay made from it: the build refuses to emit one.
 */

export interface SecretFinding {
  /** Path inside the image, starting with /. */
  path: string;
  reason: string;
}

/** Under any relay's configuration directory (every relay's service name starts with "simplex"). */
const inRelayConfig = (path: string) => path.startsWith(relayDirs('simplex').cfgPath);

/** Names that are secrets wherever they appear, whatever their content. */
const SECRET_NAMES: Array<{ test: (path: string, name: string) => boolean; reason: string }> = [
  { test: (_p, n) => n === 'hs_ed25519_secret_key', reason: 'Tor onion service secret key' },
  { test: (_p, n) => /\.auth_private$/.test(n), reason: 'Tor client authorization private key' },
  { test: (p, n) => p.startsWith('/etc/ssh/') && /^ssh_host_.*_key$/.test(n), reason: 'SSH host private key' },
  { test: (p, n) => inRelayConfig(p) && /^(ca|server|web)\.key$/.test(n), reason: 'simplexmq private key' },
  { test: (p, n) => inRelayConfig(p) && /\.ini$/.test(n), reason: 'simplexmq server configuration (holds passwords; made on first boot)' },
  { test: (p) => p.startsWith('/etc/ssl/private/') && !p.endsWith('/'), reason: 'TLS private key (e.g. the ssl-cert snakeoil key)' },
  { test: (p) => p === '/var/lib/systemd/credential.secret', reason: 'systemd credential encryption key' },
  { test: (p) => p === '/var/lib/systemd/random-seed', reason: 'random seed (identical on every card)' },
];

/**
 * Private key material as it is stored, not merely named: a PEM/OpenSSH/PGP armour line followed by encoded key
 * data (programs such as gpgv and libcrypto contain the words, never a key), and Tor's secret key file header at
 * the start of a file.
 */
const SECRET_MARKERS: Array<{ pattern: RegExp; reason: string }> = [
  { pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+: [^\n]*\r?\n)*\r?\n?[A-Za-z0-9+/=]{32}/, reason: 'PEM or OpenSSH private key' },
  { pattern: /-----BEGIN PGP PRIVATE KEY BLOCK-----\r?\n(?:[^\n]*\r?\n){0,8}[A-Za-z0-9+/=]{32}/, reason: 'PGP private key' },
  { pattern: /^== ed25519v1-secret: type\d+ ==/, reason: 'Tor ed25519 secret key' },
];

/** Files that hold a machine ID when systemd or dbus made one: every card would then share it. */
const MACHINE_ID_FILES = new Set(['/etc/machine-id', '/var/lib/dbus/machine-id']);
const MACHINE_ID = /^[0-9a-f]{32}\s*$/;

/** Only the first MiB of each file is read: private keys are small, and reading every library whole would be slow. */
const CONTENT_LIMIT = 1024 * 1024;

/** Trees that are not part of the image's filesystem while it is mounted for the build. */
const SKIP = new Set(['/proc', '/sys', '/dev', '/run', '/tmp']);

async function readHead(path: string, size: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    // Sized to the file: a zeroed MiB for each of some 20 000 files, most of them small, took 20 s of a 60 s build.
    const buffer = Buffer.alloc(Math.min(size, (await file.stat()).size));
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

export function contentFinding(content: Buffer): string | undefined {
  // Cheap byte search first: almost no file has either word, and the regular expressions run only on those.
  if (!content.includes('PRIVATE KEY') && !content.includes('ed25519v1-secret')) return undefined;
  const text = content.toString('latin1');
  return SECRET_MARKERS.find(({ pattern }) => pattern.test(text))?.reason;
}

/**
 * Every secret in the tree at `root`. `allow` lists image paths known to hold key-like text that is not a
 * secret (documentation examples); each entry must say why.
 */
export async function findSecrets(root: string, allow: ReadonlyMap<string, string> = new Map()): Promise<SecretFinding[]> {
  const findings: SecretFinding[] = [];
  const visit = async ({ full, path: relative, dirent: entry }: WalkEntry): Promise<boolean | void> => {
    const path = `/${relative}`;
    if (entry.isDirectory()) return !SKIP.has(path);
    if (!entry.isFile() || allow.has(path)) return;
    const byName = SECRET_NAMES.find((rule) => rule.test(path, entry.name));
    if (byName) {
      findings.push({ path, reason: byName.reason });
      return;
    }
    const head = await readHead(full, CONTENT_LIMIT).catch(() => Buffer.alloc(0));
    if (MACHINE_ID_FILES.has(path) && MACHINE_ID.test(head.toString('latin1'))) {
      findings.push({ path, reason: 'machine ID (systemd and dbus would use the same one on every card)' });
      return;
    }
    const reason = contentFinding(head);
    if (reason) findings.push({ path, reason });
  };
  // A directory that cannot be read is passed over: one unreadable corner of the image must not stop the scan.
  await walk(root, visit, { skipUnreadable: true });
  return findings.sort((a, b) => a.path.localeCompare(b.path));
}
