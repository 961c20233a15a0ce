import { createHash, generateKeyPairSync } from 'node:crypto';

/**
 * Tor v3 onion service keys, made in Node on the Pi (docs/simplexmq-and-tor.md#tor-onion-keys). Runs on the device:
 * Node built-ins only.
 */

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** `base32(PUBKEY || CHECKSUM || 0x03).onion`, CHECKSUM = SHA3-256(".onion checksum" || PUBKEY || 0x03)[0:2]. */
export function onionAddress(publicKey: Buffer): string {
  if (publicKey.length !== 32) throw new Error(`an ed25519 public key has 32 bytes, not ${publicKey.length}`);
  const version = Buffer.from([3]);
  const checksum = createHash('sha3-256').update(Buffer.concat([Buffer.from('.onion checksum'), publicKey, version])).digest().subarray(0, 2);
  return `${base32(Buffer.concat([publicKey, checksum, version]))}.onion`;
}

/** Tor's 32-byte tagged header: `== <type>: type0 ==`, NUL-padded. */
function header(type: string): Buffer {
  const out = Buffer.alloc(32);
  out.write(`== ${type}: type0 ==`, 'latin1');
  return out;
}

/** `hs_ed25519_secret_key`: header + the expanded key SHA-512(seed) with its scalar clamped, 96 bytes. */
export function torSecretKeyFile(seed: Buffer): Buffer {
  if (seed.length !== 32) throw new Error(`an ed25519 seed has 32 bytes, not ${seed.length}`);
  const expanded = createHash('sha512').update(seed).digest();
  expanded[0] = expanded[0]! & 248;
  expanded[31] = (expanded[31]! & 127) | 64;
  return Buffer.concat([header('ed25519v1-secret'), expanded]);
}

/** `hs_ed25519_public_key`: header + the 32-byte public key, 64 bytes. */
export function torPublicKeyFile(publicKey: Buffer): Buffer {
  return Buffer.concat([header('ed25519v1-public'), publicKey]);
}

export interface OnionKey {
  seed: Buffer;
  publicKey: Buffer;
  address: string;
}

export function newOnionKey(): OnionKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { seed, publicKey: pub, address: onionAddress(pub) };
}
