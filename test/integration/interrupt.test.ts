import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesRootedUnder } from '../../builder/image/processes.ts';
import { TestServer } from '../helpers/http-server.ts';
import { heldUnder } from '../helpers/inspect.ts';
import { REPO, TEST_CACHE, cli, isRoot, scratch, testSshPublicKey } from '../helpers/env.ts';
import { debianStandinRecipe, serveStandins } from '../helpers/standins.ts';

/** The work directory and log of the build run by `pid`, once it has one. */
async function workDirOf(pid: number): Promise<string | undefined> {
  const root = join(TEST_CACHE, 'work');
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const owner = await readFile(join(root, name, 'owner.pid'), 'utf8').catch(() => '');
    if (Number(owner.trim()) === pid) return join(root, name);
  }
  return undefined;
}

/** Move the cached packages layers out of the cache's sight (same filesystem: renames); `restore` puts back any the build did not make anew. */
async function setLayersAside(): Promise<{ restore: () => Promise<void> }> {
  const layers = join(TEST_CACHE, 'layers');
  const aside = join(TEST_CACHE, 'layers.set-aside-by-test');
  await mkdir(aside, { recursive: true });
  for (const name of await readdir(layers).catch(() => [] as string[])) await rename(join(layers, name), join(aside, name));
  return {
    async restore() {
      await mkdir(layers, { recursive: true });
      for (const name of await readdir(aside)) {
        if (existsSync(join(layers, name))) await rm(join(aside, name), { force: true });
        else await rename(join(aside, name), join(layers, name));
      }
      await rm(aside, { recursive: true, force: true });
    },
  };
}

/** Start a build and resolve once its log contains `marker`: the moment to interrupt it. */
async function startBuildUntil(recipe: string, out: string, marker: RegExp): Promise<{ child: ResultPromise; workDir: string }> {
  const child = execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'build', '--recipe', recipe, '--out', out, '--cache', TEST_CACHE, '--compress', 'none'], {
    reject: false,
    all: true,
    env: { CI: '1' },
  });
  const deadline = Date.now() + 15 * 60 * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the build ended before "${marker}":\n${(await child).all}`);
    const workDir = await workDirOf(child.pid!);
    if (workDir && marker.test(await readFile(join(workDir, 'build.log'), 'utf8').catch(() => ''))) return { child, workDir };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  child.kill('SIGKILL');
  throw new Error(`no "${marker}" in the build log within 15 minutes`);
}

describe.runIf(isRoot)('builds that are interrupted', () => {
  const server = new TestServer();
  let dir: string;
  let recipe: string;

  beforeAll(async () => {
    await server.start();
    dir = await scratch('interrupt');
    const standins = await serveStandins(server, dir, '6.5.2');
    recipe = join(dir, 'recipe.yaml');
    await writeFile(recipe, debianStandinRecipe({ name: 'interrupted', standins, sshKey: await testSshPublicKey() }));
  });
  afterAll(() => server.stop());

  it('killed (SIGKILL) while apt runs in the chroot: doctor releases every mount and loop device, the next build succeeds', { timeout: 40 * 60 * 1000 }, async () => {
    // Without a cached packages layer, the packages stage runs apt-get inside the image's chroot. The cached layers
    // are set aside rather than deleted (each costs minutes of apt under emulation to make again, the Raspberry Pi OS
    // look-alike's too) and come back once the killed build is cleaned up.
    const aside = await setLayersAside();
    const out = join(dir, 'out-killed');
    try {
      const { child, workDir } = await startBuildUntil(recipe, out, /\$ chroot .* apt-get install/);
      child.kill('SIGKILL');
      await child;
      const held = await heldUnder(TEST_CACHE);
      expect(held.mounts.length).toBeGreaterThan(0);
      expect(held.loops.length).toBeGreaterThan(0);

      const doctor = await cli(['doctor', '--cache', TEST_CACHE]);
      expect(doctor.stdout).toMatch(/released what a killed build left: [1-9]\d* mount\(s\), [1-9]\d* loop device\(s\), 1 work directory/);
      expect(await heldUnder(TEST_CACHE)).toEqual({ mounts: [], loops: [] });
      expect(await processesRootedUnder(workDir)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
      expect(existsSync(out)).toBe(false);
      expect(await readdir(join(TEST_CACHE, 'layers')).catch(() => []), 'the killed build left no layer behind').toEqual([]);
    } finally {
      await aside.restore();
    }

    const again = await cli(['build', '--recipe', recipe, '--out', out, '--cache', TEST_CACHE, '--compress', 'none']);
    expect(again.exitCode, again.all).toBe(0);
    expect(existsSync(join(out, 'SHA256SUMS'))).toBe(true);
  });

  it('stopped with Ctrl-C (SIGINT) while sealing: exits 130 with nothing mounted, no loop device and no output', { timeout: 20 * 60 * 1000 }, async () => {
    const out = join(dir, 'out-interrupted');
    const { child } = await startBuildUntil(recipe, out, /== stage seal/);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.all).toContain('SIGINT: stopping, releasing mounts and loop devices');
    expect(await heldUnder(TEST_CACHE)).toEqual({ mounts: [], loops: [] });
    expect(existsSync(join(out, 'SHA256SUMS'))).toBe(false);
  });

  it('killed (SIGKILL) while mounted: the next build releases what it left and succeeds', { timeout: 20 * 60 * 1000 }, async () => {
    const out = join(dir, 'out-next');
    const { child, workDir } = await startBuildUntil(recipe, out, /== stage (binaries|configure|seal)/);
    child.kill('SIGKILL');
    await child;
    expect((await heldUnder(TEST_CACHE)).loops.length).toBeGreaterThan(0);
    const next = await cli(['build', '--recipe', recipe, '--out', out, '--cache', TEST_CACHE, '--compress', 'none']);
    expect(next.exitCode, next.all).toBe(0);
    expect(existsSync(workDir)).toBe(false);
    expect(await heldUnder(TEST_CACHE)).toEqual({ mounts: [], loops: [] });
  });
});
