import { formatBytes } from '../format-bytes.ts';
import type { PiModel } from '../recipe/schema.ts';
import { type ReleaseManifest, manifestDate } from './read-manifest.ts';

/**
 * The notes of one of our releases (Markdown, the GitHub release's body), made from the builds' manifests: what
 * each image is built from and, against an earlier release's manifests, what changed. Pure.
 */

export interface PackageChange {
  name: string;
  from?: string;
  to?: string;
}

/** Debian package versions that differ between two builds: changed, added (no `from`) and removed (no `to`), by name. */
export function packageChanges(before: ReleaseManifest['packages'], after: ReleaseManifest['packages']): PackageChange[] {
  const old = new Map(before.map((p) => [p.name, p.version]));
  const now = new Map(after.map((p) => [p.name, p.version]));
  const names = [...new Set([...old.keys(), ...now.keys()])].sort();
  return names.filter((n) => old.get(n) !== now.get(n)).map((name) => ({ name, from: old.get(name), to: now.get(name) }));
}

export function packageVersion(manifest: ReleaseManifest, name: string): string | undefined {
  return manifest.packages.find((p) => p.name === name)?.version;
}

function describeChange(change: PackageChange): string {
  if (!change.from) return `${change.name} ${change.to} (added)`;
  if (!change.to) return `${change.name} ${change.from} (removed)`;
  return `${change.name} ${change.from} → ${change.to}`;
}

/** The packages people ask about first; every other change is in the full list. */
const HEADLINE_PACKAGES = ['tor', 'nodejs', 'openssl', 'nftables', 'openssh-server', 'linux-image-rpi-v8', 'linux-image-rpi-2712', 'linux-image-arm64'];

function baseLine(base: ReleaseManifest['base']): string {
  return `${base.description}${base.url ? ` (${base.url})` : ''}`;
}

export interface PresetChanges {
  /** One line each: simplexmq, a rebuilt binary, the base, the packages people ask about first. */
  headline: string[];
  /** Every other Debian package that changed. */
  otherPackages: PackageChange[];
}

/** What changed in one preset since the previous release's build of it. */
export function presetChanges(previous: ReleaseManifest, current: ReleaseManifest): PresetChanges {
  const headline: string[] = [];
  if (previous.simplexmq.version !== current.simplexmq.version) headline.push(`simplexmq ${previous.simplexmq.version} → ${current.simplexmq.version}`);
  else {
    for (const binary of current.simplexmq.binaries) {
      const before = previous.simplexmq.binaries.find((b) => b.name === binary.name);
      if (before && before.sha256 !== binary.sha256) headline.push(`${binary.name}: same version, another binary (sha256 ${before.sha256} → ${binary.sha256})`);
    }
  }
  if (previous.base.sha256 !== current.base.sha256) headline.push(`base: ${baseLine(previous.base)} → ${baseLine(current.base)}`);
  const changes = packageChanges(previous.packages, current.packages);
  headline.push(...changes.filter((c) => HEADLINE_PACKAGES.includes(c.name)).map(describeChange));
  return { headline, otherPackages: changes.filter((c) => !HEADLINE_PACKAGES.includes(c.name)) };
}

function changesLines(changes: PresetChanges, since: string): string[] {
  if (!changes.headline.length && !changes.otherPackages.length) return [`- Unchanged since ${since}, apart from the build date.`];
  const lines = [`- Changed since ${since}:`, ...changes.headline.map((c) => `  - ${c}`)];
  if (changes.otherPackages.length) {
    lines.push(
      `  - ${changes.otherPackages.length} other Debian package(s):`,
      '    <details><summary>versions</summary>',
      '',
      ...changes.otherPackages.map((c) => `    - ${describeChange(c)}`),
      '',
      '    </details>',
    );
  }
  return lines;
}

const MODEL_NAMES: Record<PiModel, string> = { pi5: '5', pi4: '4', pi3: '3', zero2w: 'Zero 2 W' };

function modelsText(manifest: ReleaseManifest): string {
  const models = manifest.plan.models;
  if (!models) return '';
  return (['pi5', 'pi4', 'pi3', 'zero2w'] as const).filter((m) => models.includes(m)).map((m) => MODEL_NAMES[m]).join(', ');
}

function output(manifest: ReleaseManifest, suffix: string) {
  return manifest.outputs.find((o) => o.name === `${manifest.recipe.name}${suffix}`);
}

export interface NotesInput {
  tag: string;
  /** Where the release's files are downloaded from (https://github.com/<repo>/releases/download/<tag>). */
  downloadUrl: string;
  /** The combined Raspberry Pi Imager repository among the release's files. */
  osListName: string;
  manifests: readonly ReleaseManifest[];
  /** The previous release's manifests, to say what changed. */
  previous?: { tag: string; manifests: readonly ReleaseManifest[] };
}

function presetSection(manifest: ReleaseManifest, input: NotesInput): string {
  const name = manifest.recipe.name;
  const image = output(manifest, '.img');
  const xz = output(manifest, '.img.xz');
  const binaries = manifest.simplexmq.binaries.map((b) => `${b.name} sha256 \`${b.sha256}\``).join(', ');
  const lines = [
    `### ${name}`,
    '',
    ...(manifest.plan.description ? [manifest.plan.description, ''] : []),
    `- Base: ${manifest.base.description}${manifest.base.releaseDate ? `, released ${manifest.base.releaseDate}` : ''}` +
      `${manifest.base.url ? `, from ${manifest.base.url}` : ''}${manifest.base.downloadSha256 ? ` (sha256 \`${manifest.base.downloadSha256}\`)` : ''}` +
      `; uncompressed image sha256 \`${manifest.base.sha256}\``,
    `- simplexmq ${manifest.simplexmq.version}: ${binaries}`,
    `- Tor ${packageVersion(manifest, 'tor') ?? '(not installed)'}`,
    `- Image: \`${xz?.name ?? image?.name ?? `${name}.img`}\`${xz ? ` ${formatBytes(xz.size)}` : ''}${image ? `, ${formatBytes(image.size)} uncompressed (sha256 \`${image.sha256}\`)` : ''}`,
    `- Dated ${manifestDate(manifest).slice(0, 10)}, built by simplex-pi ${manifest.tool.version}${manifest.tool.commit ? ` (${manifest.tool.commit})` : ''}; its manifest: \`${name}.manifest.json\``,
  ];
  if (input.previous) {
    const before = input.previous.manifests.find((m) => m.recipe.name === name);
    if (!before) lines.push(`- New in this release (not in ${input.previous.tag}).`);
    else lines.push(...changesLines(presetChanges(before, manifest), input.previous.tag));
  }
  return lines.join('\n');
}

export function releaseNotesMarkdown(input: NotesInput): string {
  const osList = `${input.downloadUrl}/${input.osListName}`;
  const table = input.manifests.map((m) => {
    const xz = output(m, '.img.xz');
    return `| ${m.recipe.name} | ${m.plan.description} | ${modelsText(m)} | ${m.simplexmq.version} | ${packageVersion(m, 'tor') ?? '-'} | ${xz ? formatBytes(xz.size) : '-'} |`;
  });
  const dropped = input.previous?.manifests.filter((p) => !input.manifests.some((m) => m.recipe.name === p.recipe.name)) ?? [];
  return [
    `# simplex-pi ${input.tag}`,
    '',
    'Raspberry Pi images that run a private, Tor-only SimpleX relay cluster, one per group size. Each card makes its own onion keys and relay identities on first boot.',
    '',
    '| preset | for | Raspberry Pi | simplexmq | Tor | download |',
    '|---|---|---|---|---|---|',
    ...table,
    '',
    '## Flash',
    '',
    `In Raspberry Pi Imager, add this release as a repository (*App Options → Content Repository → Edit → Use custom URL*, or \`rpi-imager --repo ${osList}\`), choose your Raspberry Pi, then *SimpleX relays: <preset>*; Imager checks the download's sha256 and offers its customisation (user, SSH key, Wi-Fi). Or download \`<preset>.img.xz\` and write it with Imager's *Use custom*.`,
    '',
    '## Check before flashing',
    '',
    '`SHA256SUMS` lists every file of this release and `SHA256SUMS.minisig` is its signature; the JSON files are signed too. With the public key from the README:',
    '',
    '```sh',
    `simplex-pi verify ${input.downloadUrl} --pubkey <public key>`,
    '# or, with minisign and the downloaded files:',
    'minisign -Vm SHA256SUMS -P <public key> && sha256sum -c --ignore-missing SHA256SUMS',
    '```',
    '',
    '## Images',
    '',
    ...input.manifests.flatMap((m) => [presetSection(m, input), '']),
    ...(dropped.length ? [`Not in this release any more: ${dropped.map((m) => m.recipe.name).join(', ')}.`, ''] : []),
  ].join('\n');
}
