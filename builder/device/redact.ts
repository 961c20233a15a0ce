/**
 * What the journal may keep of a line that holds a server address: simplexmq prints `smp://<fp>:<password>@<host>`
 * (and `init` too), and everything a unit writes goes to the journal on the card. The password part of every
 * `scheme://user:password@` is replaced; the fingerprint and the host stay, as people look for them there.
 *
 * The relay units do the same with sed (overlays/rootfs/usr/local/lib/simplex-pi/redact-passwords);
 * test/integration/redact-passwords.test.ts holds the two equal. The classes are ASCII, as sed's [:space:] is.
 */
const PASSWORD_IN_URL = /([A-Za-z][A-Za-z0-9+.-]*:\/\/[^:@/ \t\n\v\f\r]*:)[^@ \t\n\v\f\r]*@/g;

/** What stands where a password was. */
export const HIDDEN = '<hidden>';

export function redactPasswords(text: string): string {
  return text.replace(PASSWORD_IN_URL, `$1${HIDDEN}@`);
}
