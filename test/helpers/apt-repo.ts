import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { inNetns } from './netns.ts';

/**
 * A signed apt repository for the tests, served over HTTP inside a network namespace (the private Tor network's),
 * so the VM reaches it only through that network's exit. Packages are built with dpkg-deb; the Release files are
 * signed with a key made for the run (gpg, in a GNUPGHOME of its own).
 */

export interface Suite {
  /** The directory under dists/ and the sources' Suites: value. */
  name: string;
  origin: string;
  label: string;
  /** Release's Suite: (apt's "archive", a=) and Codename: (n=). */
  suite: string;
  codename: string;
  description: string;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A package with nothing in it but a file that says its version: what a test installs and upgrades. */
export async function makeDeb(dir: string, name: string, version: string): Promise<string> {
  const tree = join(dir, `${name}_${version}`);
  await rm(tree, { recursive: true, force: true });
  await mkdir(join(tree, 'DEBIAN'), { recursive: true });
  await mkdir(join(tree, 'usr/share', name), { recursive: true });
  await writeFile(join(tree, 'usr/share', name, 'version'), `${version}\n`);
  await writeFile(
    join(tree, 'DEBIAN/control'),
    [`Package: ${name}`, `Version: ${version}`, 'Architecture: all', 'Maintainer: simplex-pi tests <tests@simplex-pi.invalid>', `Description: TEST FIXTURE (simplex-pi's security update test), version ${version}`, ''].join('\n'),
  );
  const deb = join(dir, `${name}_${version}_all.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', tree, deb]);
  return deb;
}

/** A real package with its files as they are and only its version changed: what a security update of it looks like to dpkg. */
export async function repackDeb(dir: string, deb: string, version: string): Promise<string> {
  const tree = join(dir, `repack-${Date.now()}`);
  await execa('dpkg-deb', ['-R', deb, tree]);
  const control = await readFile(join(tree, 'DEBIAN/control'), 'utf8');
  await writeFile(join(tree, 'DEBIAN/control'), control.replace(/^Version: .*$/m, `Version: ${version}`));
  const name = /^Package: (.*)$/m.exec(control)![1]!;
  const arch = /^Architecture: (.*)$/m.exec(control)![1]!;
  const out = join(dir, `${name}_${version.replace(/^\d+:/, '')}_${arch}.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', tree, out]);
  await rm(tree, { recursive: true, force: true });
  return out;
}

export class AptRepo {
  private server?: ResultPromise<{ reject: false; all: true; buffer: false }>;

  private constructor(
    readonly dir: string,
    private readonly gnupg: string,
    /** The signing key, armored: the sources' Signed-By. */
    readonly key: string,
  ) {}

  static async create(dir: string): Promise<AptRepo> {
    const gnupg = join(dir, 'gnupg');
    await mkdir(gnupg, { recursive: true, mode: 0o700 });
    await mkdir(join(dir, 'www'), { recursive: true });
    const env = { GNUPGHOME: gnupg };
    await execa('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'simplex-pi test repository <tests@simplex-pi.invalid>', 'ed25519', 'sign', 'never'], { env });
    const { stdout } = await execa('gpg', ['--batch', '--armor', '--export'], { env });
    return new AptRepo(dir, gnupg, `${stdout.trim()}\n`);
  }

  /** Publish `debs` as the whole of `suite` (component main, arm64, arch-all packages in the same list as Debian's). */
  async publish(suite: Suite, debs: readonly string[]): Promise<void> {
    const root = join(this.dir, 'www');
    const dists = join(root, 'dists', suite.name);
    const binary = join(dists, 'main/binary-arm64');
    const pool = join(root, 'pool', suite.name);
    await rm(dists, { recursive: true, force: true });
    await mkdir(binary, { recursive: true });
    await mkdir(pool, { recursive: true });
    const stanzas: string[] = [];
    for (const deb of debs) {
      const name = deb.split('/').pop()!;
      await cp(deb, join(pool, name));
      const bytes = await readFile(deb);
      const control = (await execa('dpkg-deb', ['-f', deb])).stdout.trim();
      stanzas.push(`${control}\nFilename: pool/${suite.name}/${name}\nSize: ${bytes.length}\nSHA256: ${sha256(bytes)}\n`);
    }
    const packages = Buffer.from(stanzas.join('\n'));
    await writeFile(join(binary, 'Packages'), packages);
    const release = [
      `Origin: ${suite.origin}`,
      `Label: ${suite.label}`,
      `Suite: ${suite.suite}`,
      `Codename: ${suite.codename}`,
      `Date: ${new Date().toUTCString()}`,
      'Architectures: arm64',
      'Components: main',
      `Description: ${suite.description}`,
      'SHA256:',
      ` ${sha256(packages)} ${packages.length} main/binary-arm64/Packages`,
      '',
    ].join('\n');
    await writeFile(join(dists, 'Release'), release);
    await rm(join(dists, 'InRelease'), { force: true });
    await execa('gpg', ['--batch', '--yes', '--clearsign', '--output', join(dists, 'InRelease'), join(dists, 'Release')], { env: { GNUPGHOME: this.gnupg } });
  }

  /** Serve the repository at http://address:port/ inside the namespace `netns` (a static file server in Node). */
  async serve(netns: string, address: string, port: number): Promise<void> {
    const script = `
      const http = require('node:http'), fs = require('node:fs'), path = require('node:path');
      const [root, port, address] = process.argv.slice(1);
      http.createServer((req, res) => {
        const file = path.join(root, path.normalize(decodeURIComponent(req.url.split('?')[0])));
        console.log(req.method + ' ' + req.url);
        if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); res.end(); return; }
        res.writeHead(200, { 'content-length': fs.statSync(file).size });
        fs.createReadStream(file).pipe(res);
      }).listen(Number(port), address, () => console.log('ready'));`;
    const [command, ...args] = inNetns(netns, [process.execPath, '-e', script, join(this.dir, 'www'), String(port), address]);
    this.server = execa(command!, args, { reject: false, all: true, buffer: false });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      server.all!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (/ready/.test(seen)) resolve();
      });
      void server.then((result) => reject(new Error(`the test apt repository's server exited: ${seen} ${String(result.exitCode)}`)));
    });
    this.requests = [];
    server.all!.on('data', (chunk: Buffer) => this.requests.push(...chunk.toString().split('\n').filter((l) => /^(GET|HEAD) /.test(l))));
  }

  /** Every request the server answered (method and path), in order. */
  requests: string[] = [];

  async stop(): Promise<void> {
    this.server?.kill('SIGTERM');
    await this.server;
  }

  /** Sizes of everything served, for a failure message. */
  async listing(): Promise<string> {
    const walk = async (dir: string): Promise<string[]> =>
      (await Promise.all((await readdir(dir, { withFileTypes: true })).map(async (e) => (e.isDirectory() ? walk(join(dir, e.name)) : [`${join(dir, e.name)} ${(await stat(join(dir, e.name))).size}`])))).flat();
    return (await walk(join(this.dir, 'www'))).join('\n');
  }
}
