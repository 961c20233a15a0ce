import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recipeJsonSchemaText } from '../../builder/recipe/json-schema.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { scaleForGroup } from '../../builder/recipe/presets.ts';
import { cli, scratch } from '../helpers/env.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm0yXJ5sQhJ2yH8y2nKJ6wq1R4iHq8f0R1Q3Zr6sT2Y admin@laptop';
const debianWithSsh = `base: { provider: debian }\nadmin: { ssh: { over_tor: true, authorized_keys: ["${KEY}"] } }\n`;

/** [what is wrong, recipe text, the field the message must name, and part of what it must say]. */
const INVALID: Array<[string, string, string]> = [
  ['name missing', 'description: x\n', 'recipe.name:'],
  ['name with spaces and capitals', 'name: My Relays\n', 'recipe.name: must be 1–40 lower-case letters'],
  ['name of the wrong type', 'name: 42\n', 'recipe.name:'],
  ['unknown top-level field', 'name: a\nxfpt: {}\n', 'recipe.xfpt: unknown field; did you mean "xftp"?'],
  ['unknown nested field', 'name: a\nsmp:\n  instance: 3\n', 'recipe.smp.instance: unknown field; did you mean "instances"?'],
  ['too many SMP instances', 'name: a\nsmp:\n  instances: 33\n', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 33)'],
  ['zero SMP instances', 'name: a\nsmp:\n  instances: 0\n', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 0)'],
  ['fractional instances', 'name: a\nsmp:\n  instances: 1.5\n', 'recipe.smp.instances: must be a whole number from 1 to 32 (got 1.5)'],
  ['instances as text', 'name: a\nsmp:\n  instances: ten\n', 'recipe.smp.instances: must be a whole number from 1 to 32 (got "ten")'],
  ['password policy unknown', 'name: a\nsmp:\n  password: secret123\n', 'recipe.smp.password: must be generate or none'],
  ['socks_mode onion (clearnet leak)', 'name: a\nsmp:\n  socks_mode: onion\n', "recipe.smp.socks_mode: must be always: with onion, the relays would connect to public SimpleX relays over the clearnet"],
  ['privileged local port', 'name: a\nsmp:\n  local_port_base: 443\n', 'recipe.smp.local_port_base: must be a whole number from 1024 to 65535 (got 443)'],
  ['SMP ports collide with XFTP', 'name: a\nsmp:\n  instances: 3\n  local_port_base: 5442\n', 'recipe.xftp.local_port: port 5443 for the XFTP relay collides with SMP relay 2'],
  ['SMP port on Tor\'s SOCKS port', 'name: a\nsmp:\n  local_port_base: 9049\n  instances: 2\n', "recipe.smp.local_port_base: port 9050 for SMP relay 2 collides with Tor's SOCKS port"],
  ['instances run past port 65535', 'name: a\nsmp:\n  instances: 5\n  local_port_base: 65533\n', 'recipe.smp.local_port_base: 5 instances from port 65533 would go past 65535'],
  ['quota in upper case', 'name: a\nxftp:\n  quota: 10GB\n', 'recipe.xftp.quota: must be a whole number followed by gb, mb or kb in lower case'],
  ['quota with a space', 'name: a\nxftp:\n  quota: 10 gb\n', 'recipe.xftp.quota:'],
  ['quota in terabytes', 'name: a\nxftp:\n  quota: 1tb\n', 'recipe.xftp.quota:'],
  ['onion port 0', 'name: a\nxftp:\n  onion_port: 0\n', 'recipe.xftp.onion_port: must be a whole number from 1 to 65535 (got 0)'],
  ['client auth key too short', 'name: a\ntor:\n  client_auth:\n    keys:\n      - { name: alice, public_key: ABCDEF }\n', 'recipe.tor.client_auth.keys[0].public_key: must be a 52-character base32 x25519 public key'],
  ['client auth key with base64 characters', `name: a\ntor:\n  client_auth:\n    keys:\n      - { name: bob, public_key: "${'A'.repeat(50)}+/" }\n`, 'recipe.tor.client_auth.keys[0].public_key:'],
  ['SSH private key instead of public', `name: a\n${debianWithSsh.replace(KEY, '-----BEGIN OPENSSH PRIVATE KEY-----')}`, 'recipe.admin.ssh.authorized_keys[0]: must be one OpenSSH public key line'],
  ['Debian base with SSH but no key', 'name: a\nbase: { provider: debian }\nadmin: { ssh: { over_tor: true } }\n', 'recipe.admin.ssh.authorized_keys: SSH accepts keys only'],
  ['Debian base and no way to log in', 'name: a\nbase: { provider: debian }\n', 'recipe.admin.ssh: with SSH off (over_tor and lan both false) nobody could ever log in'],
  ['admin user root', 'name: a\nadmin: { user: root }\n', 'recipe.admin.user: is a system account of Debian or Raspberry Pi OS'],
  // A service's own account as the admin would get sudo without a password (security review M6, tested with messagebus).
  ['admin user messagebus', 'name: a\nadmin: { user: messagebus }\n', 'recipe.admin.user: is a system account of Debian or Raspberry Pi OS, not a person\'s: the admin gets sudo without a password, so that service would too; choose another name (got "messagebus")'],
  ['admin user systemd-network', 'name: a\nadmin: { user: systemd-network }\n', 'recipe.admin.user: is a system account of Debian or Raspberry Pi OS'],
  ['client auth name used twice', `name: a\ntor:\n  client_auth:\n    keys:\n      - { name: alice, public_key: ${'A'.repeat(52)} }\n      - { name: alice, public_key: ${'B'.repeat(52)} }\n`, 'recipe.tor.client_auth.keys[1].name: is already the name of keys[0]'],
  ['USB label too long', 'name: a\nexport: { usb_label: MY-SIMPLEX-STICK }\n', 'recipe.export.usb_label: must be 1–11 upper-case letters'],
  ['unknown export format', 'name: a\nexport: { formats: [pdf] }\n', 'recipe.export.formats[0]: must be txt, json or qr'],
  ['outbound policy unknown', 'name: a\nnetwork: { outbound: firewall }\n', 'recipe.network.outbound: must be tor-only or open'],
  ['time zone not of the IANA form', 'name: a\ntimezone: Europe Berlin\n', 'recipe.timezone: must be a time zone name'],
  ['host name with underscore', 'name: a\nhostname: my_pi\n', 'recipe.hostname: must be a host name'],
  ['binary sha256 malformed', 'name: a\nsimplexmq:\n  smp_server: { url: "https://x/y", sha256: "12ab" }\n', 'recipe.simplexmq.smp_server.sha256: must be a sha256 (64 hexadecimal characters), lock or release-notes'],
];

describe('invalid recipes', () => {
  it(`has at least 20 cases (${INVALID.length})`, () => {
    expect(INVALID.length).toBeGreaterThanOrEqual(20);
  });

  it.each(INVALID)('%s: a message naming the field, a non-zero exit, and no output', async (_what, yaml, message) => {
    const dir = await scratch('invalid');
    await writeFile(join(dir, 'r.yaml'), yaml);
    const out = join(dir, 'out');
    const result = await cli(['render', '--recipe', join(dir, 'r.yaml'), '--out', out]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(message);
    expect(existsSync(out)).toBe(false);
  });
});

describe('recipes new --group-size', () => {
  it.each([1, 5, 20, 60, 100, 300, 1000])('for %i people writes a recipe that validates and renders', async (people) => {
    const dir = await scratch('new');
    const file = join(dir, 'group.yaml');
    const written = await cli(['recipes', 'new', '--group-size', String(people), '--name', 'group', '--out', file]);
    expect(written.exitCode, written.all).toBe(0);
    const recipe = parseRecipe(await readFile(file, 'utf8'), file);
    expect(recipe.smp.instances).toBe(scaleForGroup(people).instances);
    expect(recipe.smp.instances).toBe(Math.min(32, Math.ceil(people / 10)));
    const rendered = await cli(['render', '--recipe', file, '--out', join(dir, 'out')]);
    expect(rendered.exitCode, rendered.all).toBe(0);
    const plan = JSON.parse(await readFile(join(dir, 'out', 'plan.json'), 'utf8'));
    expect(plan.smp.instances).toHaveLength(recipe.smp.instances);
  });

  it('matches the presets it is documented to follow, and never overwrites a file', async () => {
    expect([5, 20, 100, 300].map((n) => scaleForGroup(n).instances)).toEqual([1, 2, 10, 30]);
    const file = join(await scratch('new'), 'x.yaml');
    await writeFile(file, 'mine');
    const result = await cli(['recipes', 'new', '--group-size', '10', '--out', file]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('already exists');
    expect(await readFile(file, 'utf8')).toBe('mine');
    expect((await cli(['recipes', 'new', '--group-size', '0'])).stderr).toContain('--group-size must be a whole number from 1 to 10000');
  });

  it('lists the presets with what they are for', async () => {
    const result = await cli(['recipes']);
    for (const name of ['solo', 'family', 'team', 'org']) expect(result.stdout).toMatch(new RegExp(`^${name}\\s+.*people`, 'm'));
  });
});

describe('the JSON Schema for editors', () => {
  it('lists every top-level field of the recipe, and is referenced by every preset', async () => {
    const schema = JSON.parse(recipeJsonSchemaText());
    expect(Object.keys(schema.properties).sort()).toEqual(
      ['admin', 'backup', 'base', 'description', 'export', 'hostname', 'models', 'name', 'network', 'overlays', 'simplexmq', 'smp', 'source_date_epoch', 'timezone', 'tor', 'update', 'watchdog', 'xftp'].sort(),
    );
    expect(schema.additionalProperties).toBe(false);
    for (const name of ['solo', 'family', 'team', 'org']) {
      expect((await readFile(`recipes/${name}.yaml`, 'utf8')).split('\n')[0]).toBe('# yaml-language-server: $schema=./recipe.schema.json');
    }
  });
});
