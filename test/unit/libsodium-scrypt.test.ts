import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SCRYPT_SENSITIVE, type ScryptLimits, pwhashScryptSalsa208Sha256, scryptParams } from '../../builder/signing/libsodium-scrypt.ts';

/** libsodium's "interactive" limits: 16 MiB; real keys use SCRYPT_SENSITIVE. */
const FAST: ScryptLimits = { opslimit: 524288n, memlimit: 16777216n };

describe('scrypt as libsodium crypto_pwhash_scryptsalsa208sha256', () => {
  it('picks N, r, p from opslimit and memlimit as libsodium does', () => {
    expect(scryptParams(SCRYPT_SENSITIVE)).toEqual({ N: 2 ** 20, r: 8, p: 1 });
    expect(scryptParams(FAST)).toEqual({ N: 2 ** 14, r: 8, p: 1 });
    expect(scryptParams({ opslimit: 481326n, memlimit: 7256678n })).toEqual({ N: 4096, r: 8, p: 3 });
    expect(scryptParams({ opslimit: 78652n, memlimit: 6631659n })).toEqual({ N: 2048, r: 8, p: 1 });
    // Below libsodium's minimum opslimit, 32768 is used.
    expect(scryptParams({ opslimit: 1n, memlimit: 1n << 30n })).toEqual(scryptParams({ opslimit: 32768n, memlimit: 1n << 30n }));
  });

  // libsodium test/default/pwhash_scrypt.c tv() entries 1 and 9, with their lines of pwhash_scrypt.exp.
  it.each([
    {
      password:
        'a347ae92bce9f80f6f595a4480fc9c2fe7e7d7148d371e9487d75f5c23008ffae065577a928febd9b1973a5a95073acdbeb6a030cfc0d79caa2dc5cd011cef02c08da232d76d52dfbca38ca8dcbd665b17d1665f7cf5fe59772ec909733b24de97d6f58d220b20c60d7c07ec1fd93c52c31020300c6c1facd77937a597c7a6',
      salt: '5541fbc995d5c197ba290346d2c559dedf405cf97e5f95482143202f9e74f5c2',
      outlen: 155,
      limits: { opslimit: 481326n, memlimit: 7256678n },
      expected:
        '8d40f5f8c6a1791204f03e19a98cd74f918b6e331b39cfc2415e5014d7738b7bb0a83551fb14a035e07fdd4dc0c60c1a6822' +
        'ac253918979f6324ff0c87cba75d3b91f88f41ca5414a0f152bdc4d636f42ab2250afd058c19ec31a3374d1bd7133289bf21' +
        '513ff67cbf8482e626aee9864c58fd05f9ea02e508a10182b7d838157119866f072004987ef6c56683ed207705923921af9d' +
        '76444a331a',
    },
    {
      password: 'b540beb016a5366524d4605156493f9874514a5aa58818cd0c6dfffaa9e90205f17b',
      salt: '44071f6d181561670bda728d43fb79b443bb805afdebaf98622b5165e01b15fb',
      outlen: 231,
      limits: { opslimit: 78652n, memlimit: 6631659n },
      expected:
        'd7b1ef464be03ce9050b5108e25f0b8e821299986fe0ff89e17fbae65ba9fad167fbd265866ac03efc86ab0b50d46d6740a5' +
        '9adf5949b44f7f9f3ac3f3d4cc9f128966db9099deb1b6b78505242b2401a193820408eb0780b27162ebafb7c505b0e7c32c' +
        'e66c6efc0be487008c1201454680498a2fc06e00b454e0b20933906bbb0e43b399b9ee46d882f107df1ebdd1e7cd867c9cdb' +
        'a6015b7e80064ae8b3417d969524bec046e782a13b125f058cd36b5d1ae65886ae7caab45a6d98651ada435b8ee11d5c1224' +
        '232f5f515df974138dd6cf347b730481d4b073af8ff0394fe9f0b8cdfd99f5',
    },
  ])('reproduces libsodium test vector (opslimit $limits.opslimit, memlimit $limits.memlimit)', async ({ password, salt, outlen, limits, expected }) => {
    const out = await pwhashScryptSalsa208Sha256(Buffer.from(password, 'hex'), Buffer.from(salt, 'hex'), outlen, limits);
    expect(out.toString('hex')).toBe(expected);
  });

  it('refuses parameters that would take absurd memory or time instead of trying', async () => {
    await expect(pwhashScryptSalsa208Sha256(Buffer.from('x'), randomBytes(32), 104, { opslimit: 1n << 34n, memlimit: 1n << 40n }, 'k.key')).rejects.toThrow(
      /k\.key asks for \d+ MiB of memory .* refuses more than 4096 MiB/,
    );
    // 16 MiB of memory but an opslimit that makes p = 2^21: hours of work.
    await expect(pwhashScryptSalsa208Sha256(Buffer.from('x'), randomBytes(32), 104, { opslimit: 1n << 40n, memlimit: 16n << 20n }, 'k.key')).rejects.toThrow(
      /k\.key asks for scrypt work N·r·p = \d+, more than 4 times/,
    );
  });
});
