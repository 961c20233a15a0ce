import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, scratch } from '../helpers/env.ts';

describe('simplex-pi command line', () => {
  it('prints usage, and refuses an unknown command with usage', async () => {
    const help = await cli(['--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('simplex-pi build [--recipe FILE]');
    const unknown = await cli(['bulid']);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('error: unknown command "bulid"');
  });

  it("prints a command's help with each flag's default, instead of running it", async () => {
    const help = await cli(['build', '--help', '--recipe', '/nonexistent/r.yaml']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^Usage: simplex-pi build \[--recipe FILE\]/);
    expect(help.stdout).toMatch(/--xz-level 0-9 +xz's compression level: trades size for time\. \(default: 6\)/);
    const sub = await cli(['recipes', 'new', '-h']);
    expect(sub.exitCode).toBe(0);
    expect(sub.stdout).toContain('Usage: simplex-pi recipes new --group-size N [--name NAME] [--out FILE]');
  });

  it.each([
    ['an invalid recipe', 'name: x\nsmp:\n  instances: 99\n', [], 'recipe.smp.instances: must be a whole number from 1 to 32 (got 99)'],
    ['an unknown option', 'name: x\n', ['--fast'], "Unknown option '--fast'"],
    ['a bad --compress', 'name: x\n', ['--compress', 'zstd'], '--compress must be xz or none (got "zstd")'],
    ['a bad --base', 'name: x\n', ['--base', 'ubuntu'], '--base must be raspios, debian or file:PATH (got "ubuntu")'],
    ['--base file: without a sha256', 'name: x\n', ['--base', 'file:/tmp/x.img'], '--base file:/tmp/x.img needs the image\'s sha256: add --base-sha256 HEX'],
  ])('stops on %s with a message, a non-zero exit, and nothing written', async (_what, yaml, extra, message) => {
    const dir = await scratch('cli');
    await writeFile(join(dir, 'r.yaml'), yaml);
    const cache = join(dir, 'cache');
    const out = join(dir, 'out');
    const result = await cli(['build', '--recipe', join(dir, 'r.yaml'), '--out', out, '--cache', cache, ...extra]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(message);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(cache)).toBe(false);
    expect(await readdir(dir)).toEqual(['r.yaml']);
  });

  it('refuses a YAML alias bomb in a recipe as a recipe error, with no stack trace and nothing written', async () => {
    const dir = await scratch('cli-bomb');
    const levels = Array.from({ length: 9 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`);
    await writeFile(join(dir, 'bomb.yaml'), `name: bomb\nl0: &l0 lol\n${levels.join('\n')}\n`);
    const out = join(dir, 'out');
    const result = await cli(['render', '--recipe', join(dir, 'bomb.yaml'), '--out', out]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`error: ${join(dir, 'bomb.yaml')} is not valid YAML: its aliases (*name) expand into too many copies`);
    expect(result.stderr).not.toContain('failed unexpectedly');
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(out)).toBe(false);
  });

  it('names a missing recipe file', async () => {
    const result = await cli(['build', '--recipe', '/nonexistent/r.yaml']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('recipe file /nonexistent/r.yaml does not exist');
  });
});
