import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { execa } from 'execa';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A cache shared by the integration tests of one machine, so the Debian base is built once. */
export const TEST_CACHE = process.env.SIMPLEX_PI_TEST_CACHE ?? '/var/tmp/simplex-pi-test-cache';

export const isRoot = process.getuid?.() === 0;

/** Scratch directories made by this test file; test/helpers/cleanup.ts removes them after the file's tests. */
export const scratchDirs: string[] = [];

/** SIMPLEX_PI_KEEP_SCRATCH=1 (README, "Tests"): every scratch directory is kept for debugging. */
export function keepScratch(): boolean {
  return process.env.SIMPLEX_PI_KEEP_SCRATCH === '1';
}

/**
 * A scratch directory under the system's temporary directory, removed after the test file (images in them are
 * gigabytes: a suite that left them behind filled a disk). SIMPLEX_PI_KEEP_SCRATCH=1 keeps them for debugging.
 */
export async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `spi-${prefix}-`));
  scratchDirs.push(dir);
  return dir;
}

/** Run the real CLI, as a user would. */
export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved. */
  all: string;
}

export async function cli(args: string[], options: { timeout?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), ...args], {
    cwd: REPO,
    reject: false,
    all: true,
    timeout: options.timeout ?? 30 * 60 * 1000,
    env: { CI: '1', ...options.env },
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr), all: String(result.all) };
}

/** A real OpenSSH key pair made for the test: the public key line, and the private key's file (for `ssh -i`). */
export async function testSshKeyPair(): Promise<{ publicKey: string; privateKeyFile: string }> {
  const dir = await scratch('key');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@simplex-pi', '-f', join(dir, 'id')]);
  const { readFile } = await import('node:fs/promises');
  return { publicKey: (await readFile(join(dir, 'id.pub'), 'utf8')).trim(), privateKeyFile: join(dir, 'id') };
}

/** A real OpenSSH public key line, made for the test (the private half is not used). */
export async function testSshPublicKey(): Promise<string> {
  return (await testSshKeyPair()).publicKey;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
