import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EM_AARCH64, parseElf, readElf } from '../../builder/image/elf.ts';
import { parseReleaseNoteHashes, releaseBody } from '../../builder/stages/simplexmq-hashes.ts';
import { missingLibraries, parseReportedVersion, versionMatches } from '../../builder/stages/binaries.ts';
import { buildStandin } from '../fixtures/standin/build.ts';
import { scratch } from '../helpers/env.ts';

describe('ELF machine check', () => {
  let standin: string;
  beforeAll(async () => {
    standin = await buildStandin({ kind: 'smp', version: '6.5.2.0', output: join(await scratch('elf'), 'smp-server') });
  });

  it('recognises an aarch64 executable, dynamically linked (the stand-in, linked like the real assets)', async () => {
    const elf = await readElf(standin);
    expect(elf).toMatchObject({ class: 64, machine: EM_AARCH64, machineName: 'aarch64', dynamic: true });
  });

  it('recognises the host x86-64 node binary as the wrong machine, dynamically linked', async () => {
    const elf = await readElf(process.execPath);
    expect(elf).toMatchObject({ class: 64, machine: 62, machineName: 'x86-64', dynamic: true });
  });

  it('is not fooled by a script or an HTML error page', () => {
    expect(parseElf(Buffer.from('#!/bin/sh\necho hi\n'.padEnd(100)))).toBeUndefined();
    expect(parseElf(Buffer.from('<html><body>404</body></html>'.padEnd(100)))).toBeUndefined();
  });
});

describe('release-notes hashes', () => {
  const hex = (c: string) => c.repeat(64);
  const body = [
    'What is new: …',
    '',
    `SHA2-256(smp-server-ubuntu-22_04-aarch64)= ${hex('a')}`,
    `SHA2-256(xftp-server-ubuntu-22_04-aarch64)= ${hex('B')}`,
    `SHA2-256(smp-server-ubuntu-24_04-x86-64)= ${hex('c')}`,
  ].join('\r\n');

  it('reads every asset hash in openssl format, lower-cased', () => {
    const hashes = parseReleaseNoteHashes(body);
    expect(hashes.get('smp-server-ubuntu-22_04-aarch64')).toBe(hex('a'));
    expect(hashes.get('xftp-server-ubuntu-22_04-aarch64')).toBe(hex('b'));
    expect(hashes.size).toBe(3);
  });

  it('refuses contradictory lines', () => {
    expect(() => parseReleaseNoteHashes(`SHA2-256(x)= ${hex('a')}\nSHA2-256(x)= ${hex('b')}`)).toThrow(/two different sha256 values for x/);
  });

  it('ignores lines that are not full hashes', () => {
    expect(parseReleaseNoteHashes('SHA2-256(x)= abc\nsha256 of y is ' + hex('d')).size).toBe(0);
  });

  it('takes the body of a GitHub release document', () => {
    expect(releaseBody(JSON.stringify({ tag_name: 'v6.5.2', body })
      , 'u')).toBe(body);
    expect(() => releaseBody('<html>', 'https://x')).toThrow(/https:\/\/x is not JSON/);
  });
});

describe('version and library checks', () => {
  it('reads the version from the first line of -v', () => {
    expect(parseReportedVersion('SMP server v6.5.2.0 / 1a2b3c4\nUsage: …')).toBe('6.5.2.0');
    expect(parseReportedVersion('SimpleX XFTP server v7.0.0-beta.2 / 836254a')).toBe('7.0.0-beta.2');
    expect(parseReportedVersion('command not found')).toBeUndefined();
  });

  it('matches a recipe version to the four-part version the binary reports', () => {
    expect(versionMatches('6.5.2.0', '6.5.2')).toBe(true);
    expect(versionMatches('6.5.2.0', '6.5.2.0')).toBe(true);
    expect(versionMatches('6.5.20.0', '6.5.2')).toBe(false);
    expect(versionMatches('6.4.5.1', '6.5.2')).toBe(false);
  });

  it('matches a pre-release tag to the cabal version its binaries report (beta.1 reports 6.5.0.1, beta.2 of 7.0.0 reports 7.0.0.3)', () => {
    expect(versionMatches('6.5.0.1', '6.5.0-beta.1')).toBe(true);
    expect(versionMatches('7.0.0.3', '7.0.0-beta.2')).toBe(true);
    expect(versionMatches('7.0.0-beta.2', '7.0.0-beta.2')).toBe(true);
    expect(versionMatches('6.5.1.0', '6.5.0-beta.1')).toBe(false);
    expect(versionMatches('6.5.0', '6.5.0-beta.1')).toBe(false);
  });

  it('lists the libraries ldd cannot find', () => {
    const ldd = '\tlinux-vdso.so.1 (0x0000)\n\tlibgmp.so.10 => not found\n\tlibc.so.6 => /lib/aarch64-linux-gnu/libc.so.6 (0x0000)\n\tlibcrypto.so.1.1 => not found\n';
    expect(missingLibraries(ldd)).toEqual(['libgmp.so.10', 'libcrypto.so.1.1']);
    expect(missingLibraries('\tlibc.so.6 => /lib/libc.so.6\n')).toEqual([]);
  });
});
