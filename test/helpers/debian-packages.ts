import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { TEST_CACHE, scratch } from './env.ts';

/**
 * A real Debian package, unpacked, for tests that check our files against what Debian ships (cloud-init's unit
 * names, cloud-init's own config merging). Fetched with apt in an apt root of its own (nothing of the host's apt
 * state is read or changed), from the Debian archive the integration tests already need, verified by apt against
 * the host's debian-archive-keyring, and kept in the test cache.
 */
export async function debianPackage(name: string, options: { suite?: string; arch?: string } = {}): Promise<{ dir: string; version: string }> {
  const suite = options.suite ?? 'trixie';
  const arch = options.arch ?? 'arm64';
  const cacheDir = join(TEST_CACHE, 'debian-packages', `${suite}-${arch}`);
  const found = (await readdir(cacheDir).catch(() => [] as string[])).find((entry) => entry.startsWith(`${name}_`));
  if (found) return { dir: join(cacheDir, found), version: found.slice(name.length + 1) };
  const { path: deb, version } = await debianDeb(name, { suite, arch });
  // Unpacked beside its final place and renamed, so a test run cut short leaves no half package in the cache.
  await mkdir(cacheDir, { recursive: true });
  const unpacked = join(cacheDir, `.partial-${process.pid}-${name}`);
  await rm(unpacked, { recursive: true, force: true });
  await execa('dpkg-deb', ['-x', deb, unpacked]);
  const dir = join(cacheDir, `${name}_${version}`);
  if (existsSync(dir)) await rm(unpacked, { recursive: true, force: true });
  else await rename(unpacked, dir);
  return { dir, version };
}

/** The same package's .deb as the archive has it (control files and all), kept in the test cache. */
export async function debianDeb(name: string, options: { suite?: string; arch?: string } = {}): Promise<{ path: string; version: string }> {
  const suite = options.suite ?? 'trixie';
  const arch = options.arch ?? 'arm64';
  const cacheDir = join(TEST_CACHE, 'debian-debs', `${suite}-${arch}`);
  const cached = (await readdir(cacheDir).catch(() => [] as string[])).find((entry) => entry.startsWith(`${name}_`) && entry.endsWith('.deb'));
  if (cached) return { path: join(cacheDir, cached), version: decodeURIComponent(cached.slice(name.length + 1).replace(/_[^_]+\.deb$/, '')) };

  const root = await scratch('apt');
  for (const sub of ['etc/apt/apt.conf.d', 'etc/apt/preferences.d', 'etc/apt/sources.list.d', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'var/lib/dpkg', 'debs']) {
    await mkdir(join(root, sub), { recursive: true });
  }
  await writeFile(join(root, 'var/lib/dpkg/status'), '');
  await writeFile(join(root, 'etc/apt/sources.list'), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${suite} main\n`);
  const conf = join(root, 'apt.conf');
  await writeFile(
    conf,
    [`Dir "${root}/";`, `Dir::State::status "${root}/var/lib/dpkg/status";`, `APT::Architecture "${arch}";`, `APT::Architectures { "${arch}"; };`, 'Acquire::Languages "none";', 'APT::Sandbox::User "root";', ''].join('\n'),
  );
  const env = { APT_CONFIG: conf };
  const update = await execa('apt-get', ['-q', 'update'], { env, reject: false, all: true });
  if (update.exitCode !== 0 || /^(W|E): Failed to fetch/m.test(String(update.all))) {
    throw new Error(`cannot read the Debian ${suite} archive to get the ${name} package (the integration tests need deb.debian.org):\n${update.all}`);
  }
  await execa('apt-get', ['-q', 'download', name], { env, cwd: join(root, 'debs') });
  const deb = (await readdir(join(root, 'debs'))).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${name} wrote no .deb`);
  await mkdir(cacheDir, { recursive: true });
  const partial = join(cacheDir, `.partial-${process.pid}-${deb}`);
  await cp(join(root, 'debs', deb), partial);
  await rename(partial, join(cacheDir, deb));
  return { path: join(cacheDir, deb), version: decodeURIComponent(deb.slice(name.length + 1).replace(/_[^_]+\.deb$/, '')) };
}
