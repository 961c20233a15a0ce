import { readFileSync } from 'node:fs';
import type { Owner } from './files.ts';

/** A user's uid and primary gid from /etc/passwd (the device has no getpwnam in Node). */
export function ownerOf(user: string, passwd = readFileSync('/etc/passwd', 'utf8')): Owner {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error(`user ${user} does not exist on this system; was the image built by simplex-pi?`);
}
