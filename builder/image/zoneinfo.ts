import { lstat, open, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.ts';

/** Where the image's tzdata keeps its zones; /etc/localtime links here (builder/render/render.ts). */
export const ZONEINFO = '/usr/share/zoneinfo';

type Resolved = { kind: 'found'; path: string } | { kind: 'missing'; path: string } | { kind: 'loop' };

/**
 * Follow a path inside the image as the Pi will: symlinks, relative or absolute, are resolved against the image's
 * root, never the build host's.
 */
export async function resolveInImage(root: string, path: string): Promise<Resolved> {
  let pending = posix.normalize(path).split('/').filter(Boolean);
  let current = '/';
  for (let hops = 0; pending.length; ) {
    const next = posix.join(current, pending.shift()!);
    const info = await lstat(join(root, next)).catch(() => undefined);
    if (!info) return { kind: 'missing', path: posix.join(next, ...pending) };
    if (!info.isSymbolicLink()) {
      current = next;
      continue;
    }
    if (++hops > 40) return { kind: 'loop' };
    const target = await readlink(join(root, next));
    pending = [...posix.normalize(target.startsWith('/') ? target : posix.join(posix.dirname(next), target)).split('/').filter(Boolean), ...pending];
    current = '/';
  }
  return { kind: 'found', path: current };
}

/** Compiled zone files start with "TZif" (tzfile(5)). */
async function isZoneFile(hostPath: string): Promise<boolean> {
  const file = await open(hostPath).catch(() => undefined);
  if (!file) return false;
  try {
    const magic = Buffer.alloc(4);
    await file.read(magic, 0, 4, 0);
    return magic.toString('latin1') === 'TZif' && (await file.stat()).isFile();
  } finally {
    await file.close();
  }
}

/**
 * configure: the recipe's time zone must be a zone file in the image, or /etc/localtime dangles and the Pi
 * silently runs on UTC. Names are checked against the image's own tzdata because it is what the Pi will read.
 */
export async function checkTimezone(root: string, timezone: string): Promise<void> {
  const where = `${ZONEINFO}/${timezone}`;
  const resolved = await resolveInImage(root, where);
  let problem: string | undefined;
  if (resolved.kind === 'loop') problem = `${where} is a loop of symbolic links`;
  else if (resolved.kind === 'missing') problem = resolved.path === where ? `${where} does not exist` : `${where} is a dangling link (to ${resolved.path}, which does not exist)`;
  else if (!(await isZoneFile(join(root, resolved.path)))) problem = `${where} is not a time zone file`;
  if (!problem) return;
  throw new UserError(
    `recipe.timezone: "${timezone}" is not a time zone of this image's tzdata: ${problem} in the image, so the Pi would run on UTC. ` +
      `Use a current IANA time zone name such as Europe/Berlin or Asia/Kolkata (\`timedatectl list-timezones\` on a current Debian lists them).`,
  );
}
