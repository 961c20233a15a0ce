import { createHash, randomBytes, X509Certificate } from 'node:crypto';

/**
 * SimpleX server addresses, built from their parts (docs/simplexmq-and-tor.md#server-address), never copied from
 * the `Server address:` line the server prints (that one shows the local port). Runs on the device.
 */

/** The fingerprint in an address: sha256 of the CA certificate's DER, base64url WITH padding, as the server writes it. */
export function fingerprintOf(caCertificatePem: string): string {
  const der = new X509Certificate(caCertificatePem).raw;
  return createHash('sha256').update(der).digest('base64').replaceAll('+', '-').replaceAll('/', '_');
}

/** Characters simplexmq forbids in a password: whitespace, @, : and /. */
export function validPassword(password: string): boolean {
  return password.length > 0 && !/[\s@:/]/.test(password) && /^[\x21-\x7e]+$/.test(password);
}

/**
 * A new server password as smp-server init makes one (Main.hs: strEncode of 32 random bytes): base64url with
 * padding, 44 characters. Used for the XFTP relay, whose init has no password option.
 */
export function newServerPassword(): string {
  return `${randomBytes(32).toString('base64url')}=`;
}

export interface AddressParts {
  scheme: 'smp' | 'xftp';
  fingerprint: string;
  password?: string;
  /** The onion host, with or without `.onion`. */
  onion: string;
  /** The onion service's virtual port, always written: the apps then need no defaults. */
  port: number;
}

export function serverAddress({ scheme, fingerprint, password, onion, port }: AddressParts): string {
  if (!/^[A-Za-z0-9_-]{43}=$/.test(fingerprint)) throw new Error(`not a simplexmq fingerprint: ${fingerprint}`);
  if (password !== undefined && !validPassword(password)) throw new Error('the password has a character simplexmq forbids (whitespace, @, : or /)');
  const host = onion.endsWith('.onion') ? onion : `${onion}.onion`;
  if (!/^[a-z2-7]{56}\.onion$/.test(host)) throw new Error(`not a v3 onion address: ${onion}`);
  return `${scheme}://${fingerprint}${password ? `:${password}` : ''}@${host}:${port}`;
}
