import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { recipeErrorOf } from '../helpers/recipe-error.ts';
import { UserError } from '../../builder/errors.ts';
import { MAX_ALIAS_COUNT, parseRecipe } from '../../builder/recipe/load.ts';
import { closest } from '../../builder/recipe/errors.ts';
import { RELAY_USER, SELF_KEY_NAME, TOR_USER, generatedClientName } from '../../builder/plan/layout.ts';
import { isSystemAccountName } from '../../builder/recipe/system-accounts.ts';

const errorOf = recipeErrorOf;

describe('recipe loading', () => {
  it('refuses a simplexmq version without aarch64 release assets unless the binaries are given, and accepts pre-releases', () => {
    expect(errorOf('name: old\nsimplexmq: { version: 6.4.5 }\n')).toMatch(
      /simplexmq\.version: simplexmq 6\.4\.5 has no aarch64 release assets \(upstream builds them from 6\.5\.0 on\).*give simplexmq\.smp_server as the url or path and sha256 of your own aarch64 build/,
    );
    const own = 'name: own\nsimplexmq:\n  version: 6.4.5\n  smp_server: { path: /tmp/smp, sha256: ' + 'a'.repeat(64) + ' }\n';
    expect(errorOf(own)).toContain('simplexmq.xftp_server');
    expect(() => parseRecipe(`${own}xftp: { enabled: false }\n`, 'r.yaml')).not.toThrow();
    expect(parseRecipe('name: beta\nsimplexmq: { version: v6.5.0-beta.8 }\n', 'r.yaml').simplexmq.version).toBe('6.5.0-beta.8');
    expect(parseRecipe('name: seven\nsimplexmq: { version: 7.0.0 }\n', 'r.yaml').simplexmq.version).toBe('7.0.0');
  });

  it('fills defaults for a minimal recipe', () => {
    const recipe = parseRecipe('name: home\n', 'r.yaml');
    expect(recipe.base).toMatchObject({ provider: 'raspios', release: 'latest' });
    expect(recipe.smp.instances).toBe(1);
    expect(recipe.xftp.enabled).toBe(true);
    expect(recipe.simplexmq.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('accepts every preset in recipes/', () => {
    const files = readdirSync('recipes').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(() => parseRecipe(readFileSync(`recipes/${file}`, 'utf8'), file)).not.toThrow();
  });

  it.each([
    ['smp:\n  instances: 40\nname: a', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 40)'],
    ['smp:\n  instances: 0\nname: a', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 0)'],
    ['smp:\n  instances: 2.5\nname: a', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 2.5)'],
    ['smp:\n  instances: three\nname: a', 'recipe.smp.instances: must be a whole number from 1 to 32 (got "three")'],
    ['name: Bad Name', 'recipe.name: must be 1–40 lower-case letters'],
    ['description: x', 'recipe.name:'],
    ['name: a\nbase:\n  provider: windows', 'recipe.base.provider'],
    ['name: a\nbase:\n  provider: file\n  path: x.img\n  sha256: abc', 'recipe.base.sha256: must be a sha256: 64 hexadecimal characters (got "abc")'],
    ['name: a\nbase:\n  provider: debian\n  suite: jessie', 'recipe.base.suite: must be bookworm or trixie (got "jessie")'],
    ['name: a\nsimplexmq:\n  version: latest', 'recipe.simplexmq.version: must be a simplexmq version like 6.5.2 (got "latest")'],
    ['name: a\nsimplexmq:\n  smp_server:\n    url: ftp://x\n    sha256: release-notes', 'recipe.simplexmq.smp_server.url: must be an http:// or https:// URL'],
    ['name: a\nsimplexmq:\n  smp_server:\n    path: ./smp\n    sha256: release-notes', 'recipe.simplexmq.smp_server: a local path needs its sha256'],
    ['name: a\nxftp:\n  enabled: yes please', 'recipe.xftp.enabled: must be true or false'],
  ])('rejects %j naming the field', (text, expected) => {
    expect(errorOf(text)).toContain(expected);
  });

  it('names an unknown field and suggests the one meant', () => {
    expect(errorOf('name: a\nsmp:\n  instance: 3\n')).toContain('recipe.smp.instance: unknown field; did you mean "instances"?');
    expect(errorOf('name: a\nxfpt: {}\n')).toContain('recipe.xfpt: unknown field; did you mean "xftp"?');
  });

  it('reports YAML syntax errors and duplicate keys with the file name', () => {
    expect(errorOf('name: [a\n')).toMatch(/^r\.yaml is not valid YAML/);
    expect(errorOf('name: a\nname: b\n')).toMatch(/^r\.yaml is not valid YAML/);
    expect(errorOf('- a\n- b\n')).toContain('a recipe is a YAML mapping');
  });

  it('refuses a YAML alias bomb ("billion laughs") as a recipe error naming the file, and still reads a few aliases', () => {
    // Nine levels of nine aliases: a few hundred bytes that would expand to 9^9 strings.
    const levels = Array.from({ length: 9 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(', ')}]`);
    const bomb = `name: bomb\nl0: &l0 lol\n${levels.join('\n')}\n`;
    let thrown: unknown;
    try {
      parseRecipe(bomb, 'bomb.yaml');
    } catch (error) {
      thrown = error;
    }
    // A UserError is printed as "error: …" without a stack; anything else is reported as a bug.
    expect(thrown).toBeInstanceOf(UserError);
    expect((thrown as Error).message).toMatch(/^bomb\.yaml is not valid YAML: its aliases \(\*name\) expand into too many copies .*billion laughs.*write the values out/);
    // An alias before its anchor is the recipe's mistake too, not a bug.
    expect(() => parseRecipe('name: *x\n', 'r.yaml')).toThrow(UserError);
    expect(errorOf('name: *x\n')).toMatch(/^r\.yaml is not valid YAML: Unresolved alias.*: x/);
    // Aliases within the limit are ordinary YAML.
    const reused = `name: &n home\ndescription: *n\nmodels: [&m pi4, ${Array(MAX_ALIAS_COUNT - 1).fill('*m').join(', ')}]\n`;
    const recipe = parseRecipe(reused, 'r.yaml');
    expect(recipe).toMatchObject({ name: 'home', description: 'home' });
    expect(recipe.models).toHaveLength(MAX_ALIAS_COUNT);
  });

  describe('tor.client_auth.keys names: one file each in authorized_clients/', () => {
    const key = 'A'.repeat(52);
    const recipe = (names: string[], generate = 0): string =>
      `name: a\ntor:\n  client_auth:\n    generate: ${generate}\n    keys:\n${names.map((n) => `      - { name: ${JSON.stringify(n)}, public_key: ${key} }\n`).join('')}`;

    it('refuses a name used twice, naming the first use (the second key would overwrite the first one\'s .auth)', () => {
      const message = errorOf(recipe(['alice', 'bob', 'alice']));
      expect(message).toContain('recipe.tor.client_auth.keys[2].name: is already the name of keys[0]; each key needs its own name');
      expect(message).toContain('(got "alice")');
      // Reported once, at the second use: the first is not the mistake.
      expect(message).not.toContain('keys[0].name');
    });

    it('refuses the names the Pi gives its own keys: client-1 … client-N with generate: N, and its key for its relays', () => {
      expect(errorOf(recipe(['client-3'], 3))).toContain('recipe.tor.client_auth.keys[0].name: is the name of a key the Pi makes itself (generate: 3 makes client-1 … client-3); choose another name (got "client-3")');
      expect(errorOf(recipe(['client-1'], 1))).toContain('(generate: 1 makes client-1)');
      expect(errorOf(recipe([SELF_KEY_NAME]))).toContain(`recipe.tor.client_auth.keys[0].name: is the name of the Pi's own key for its relays; choose another name (got "${SELF_KEY_NAME}")`);
      expect(generatedClientName(3)).toBe('client-3');
      // Beyond what generate makes, and without generate, client-N is a name like any other.
      expect(parseRecipe(recipe(['client-4', 'client-10'], 3), 'r.yaml').tor.client_auth.keys.map((k) => k.name)).toEqual(['client-4', 'client-10']);
      expect(() => parseRecipe(recipe(['client-1']), 'r.yaml')).not.toThrow();
    });

    it.each(['../x', 'a.b', '-rf', '_x', 'A', '', 'a'.repeat(33), 'a b'])('refuses %j, which is not a safe file name', (name) => {
      expect(errorOf(recipe([name]))).toContain('recipe.tor.client_auth.keys[0].name: must be 1–32 lower-case letters, digits, - or _, starting with a letter or digit');
    });

    it('accepts distinct names of letters, digits, - and _', () => {
      expect(parseRecipe(recipe(['alice', 'bob-2', 'c_d', '0', 'a'.repeat(32)], 2), 'r.yaml').tor.client_auth.keys).toHaveLength(5);
    });
  });

  describe('admin.user: never a system account, which would get sudo without a password', () => {
    const admin = (user: string) => `name: a\nadmin: { user: ${JSON.stringify(user)} }\n`;

    it.each(['root', 'daemon', 'nobody', 'www-data', 'messagebus', 'sshd', 'avahi', 'polkitd', 'tss', 'debian-tor', 'simplex', '_apt', '_chrony', 'systemd-network', 'systemd-timesync'])(
      'refuses %s naming the field',
      (user) => {
        expect(errorOf(admin(user))).toContain(
          `recipe.admin.user: is a system account of Debian or Raspberry Pi OS, not a person's: the admin gets sudo without a password, so that service would too; choose another name (got "${user}")`,
        );
      },
    );

    it("refuses the image's own service users, whatever layout.ts names them", () => {
      expect(errorOf(admin(RELAY_USER))).toContain('recipe.admin.user: is a system account');
      expect(errorOf(admin(TOR_USER))).toContain('recipe.admin.user: is a system account');
    });

    it("accepts people's names, including ones that only start like a system account", () => {
      for (const user of ['admin', 'alice', 'rooter', 'sysadmin', 'bin2', 'systemd']) expect(parseRecipe(admin(user), 'r.yaml').admin.user).toBe(user);
      expect(isSystemAccountName('admin')).toBe(false);
    });
  });

  describe('admin.ssh.authorized_keys: the comment after the key is plain text', () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${'A'.repeat(43)}`;
    const keys = (...lines: string[]) => `name: a\nadmin:\n  ssh:\n    over_tor: true\n    authorized_keys: [${lines.map((l) => JSON.stringify(l)).join(', ')}]\n`;

    it.each([
      ['\r', 'a carriage return (U+000D)'],
      ['\u2028', 'a line separator (U+2028)'],
      ['\u2029', 'a paragraph separator (U+2029)'],
      ['\t', 'a tab (U+0009)'],
      ['\x1b[8m', 'a control character (U+001B)'],
      ['\x7f', 'a control character (U+007F)'],
      ['\u0085', 'a control character (U+0085)'],
      ['\u202e', 'a text-direction mark (U+202E)'],
      ['\u2066', 'a text-direction mark (U+2066)'],
      ['\u200f', 'a text-direction mark (U+200F)'],
    ])('refuses %j in a comment, naming the field and the character', (character, named) => {
      expect(errorOf(keys(`${key} ok@laptop`, `${key} alice${character}@laptop`))).toContain(
        `recipe.admin.ssh.authorized_keys[1]: has ${named} in its comment, the text after the key: it would show something other than what the file holds; keep the comment to plain text, e.g. you@laptop`,
      );
    });

    it('refuses a line feed as before (a second line could add options), and accepts plain comments in any script', () => {
      expect(errorOf(keys(`${key} a\ncommand="/bin/sh" ${key}`))).toContain('recipe.admin.ssh.authorized_keys[0]: must be one OpenSSH public key line');
      const accepted = parseRecipe(keys(`${key} alice@laptop`, `${key} José Ñúñez (phone 2)`, `${key} مريم`, key, `  ${key} padded  `), 'r.yaml');
      expect(accepted.admin.ssh.authorized_keys).toEqual([`${key} alice@laptop`, `${key} José Ñúñez (phone 2)`, `${key} مريم`, key, `${key} padded`]);
    });
  });

  it('suggests close names only', () => {
    expect(closest('instnces', ['instances', 'name'])).toBe('instances');
    expect(closest('zzzzzz', ['instances', 'name'])).toBeUndefined();
  });
});
