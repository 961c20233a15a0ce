import { scrypt } from 'node:crypto';
import { UserError } from '../errors.ts';

/**
 * scrypt as libsodium's crypto_pwhash_scryptsalsa208sha256, which minisign uses to encrypt secret keys. A key file
 * stores libsodium's opslimit and memlimit, and libsodium derives scrypt's N, r and p from them; Node's scrypt
 * takes N, r and p, so keys made by minisign decrypt here only if that derivation is libsodium's exactly.
 */

export interface ScryptLimits {
  opslimit: bigint;
  memlimit: bigint;
}

/** libsodium's crypto_pwhash_scryptsalsa208sha256_*_SENSITIVE, which `minisign -G` uses: N = 2^20, r = 8, 1 GiB. */
export const SCRYPT_SENSITIVE: ScryptLimits = { opslimit: 33554432n, memlimit: 1073741824n };

/** Larger scrypt memory than this in a key file is refused rather than allocated: minisign's own keys use 1 GiB. */
const SCRYPT_MAX_MEMORY = 4 * 1024 ** 3;
const SCRYPT_MAX_WORK = 4 * 2 ** 20 * 8;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** libsodium's pickparams(), line for line, so that keys made by minisign decrypt here and the other way. */
export function scryptParams({ opslimit, memlimit }: ScryptLimits): ScryptParams {
  const ops = opslimit < 32768n ? 32768n : opslimit;
  const r = 8n;
  let nLog2 = 1n;
  let p: bigint;
  if (ops < memlimit / 32n) {
    p = 1n;
    const maxN = ops / (r * 4n);
    for (nLog2 = 1n; nLog2 < 63n; nLog2++) if (1n << nLog2 > maxN / 2n) break;
  } else {
    const maxN = memlimit / (r * 128n);
    for (nLog2 = 1n; nLog2 < 63n; nLog2++) if (1n << nLog2 > maxN / 2n) break;
    let maxrp = ops / 4n / (1n << nLog2);
    if (maxrp > 0x3fffffffn) maxrp = 0x3fffffffn;
    p = maxrp / r;
  }
  return { N: Number(1n << nLog2), r: Number(r), p: Number(p) };
}

/** crypto_pwhash_scryptsalsa208sha256(out, outputBytes, password, salt, opslimit, memlimit). */
export async function pwhashScryptSalsa208Sha256(password: Uint8Array, salt: Uint8Array, outputBytes: number, limits: ScryptLimits, source = 'the key'): Promise<Buffer> {
  const { N, r, p } = scryptParams(limits);
  const memory = 128 * r * (N + p + 2);
  if (p < 1 || N < 2 || r * p >= 2 ** 30 || !Number.isSafeInteger(memory)) {
    throw new UserError(`${source} asks for scrypt parameters that cannot work (opslimit ${limits.opslimit}, memlimit ${limits.memlimit} give N=${N}, r=${r}, p=${p}); the file is damaged or was not made by minisign`);
  }
  if (memory > SCRYPT_MAX_MEMORY) {
    throw new UserError(`${source} asks for ${Math.ceil(memory / 1024 ** 2)} MiB of memory to derive its key from the password; simplex-pi refuses more than ${SCRYPT_MAX_MEMORY / 1024 ** 2} MiB (minisign's own keys use 1024 MiB): the file is damaged or was not made by minisign`);
  }
  // A damaged opslimit can ask for a huge p with little memory: hours of work instead of a message.
  if (N * r * p > SCRYPT_MAX_WORK) {
    throw new UserError(`${source} asks for scrypt work N·r·p = ${N * r * p}, more than 4 times what minisign's own keys use (${2 ** 23}): the file is damaged or was not made by minisign`);
  }
  return new Promise((resolve, reject) =>
    scrypt(password, salt, outputBytes, { N, r, p, maxmem: memory + 1024 * 1024 }, (error, key) => (error ? reject(error) : resolve(key))),
  );
}
