import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { parsePasswd } from '../inspect/parse.ts';
import { FIRST_PERSON_UID, LAST_PERSON_UID } from '../recipe/system-accounts.ts';

/**
 * Why the admin user may not be `user` in an image whose /etc/passwd is `passwd`, or undefined when it may: absent
 * (configure creates it) or an account for a person (uid 1000–59999), which keeps its uid and gets the admin's keys
 * and sudo rule. An account outside that range belongs to the system: reusing it would give that service
 * passwordless sudo (recipe/system-accounts.ts says why).
 */
export function systemAccountProblem(passwd: string, user: string): string | undefined {
  const entry = parsePasswd(passwd).find((e) => e.name === user);
  if (!entry || (entry.uid >= FIRST_PERSON_UID && entry.uid <= LAST_PERSON_UID)) return undefined;
  return `recipe.admin.user: "${user}" is a system account of the base image (uid ${entry.uid}); choose another name`;
}

/** configure, before anything is written: the admin user must not be one of the base image's system accounts. */
export async function checkAdminUser(root: string, user: string): Promise<void> {
  const problem = systemAccountProblem(await readFile(join(root, 'etc/passwd'), 'utf8'), user);
  if (problem) throw new UserError(problem);
}
