import { z } from 'zod';

/**
 * A relay update bundle: one plain tar, published with each release and signed with the project's minisign key
 * (`<bundle>.minisig` next to it), that carries a simplexmq release to a running Pi without reflashing it:
 * - UPDATE_MANIFEST_MEMBER: what it is (the simplexmq version, each binary's member, sha256 and size);
 * - one member a binary, `bin/<name>`: the aarch64 smp-server and xftp-server.
 * Written by the release (update/write-bundle.ts), read on the Pi (update/open-bundle.ts), which checks the
 * signature over the whole file before it reads a byte of the tar, then the manifest, then every binary.
 */

export const UPDATE_FORMAT = 'simplex-pi-relay-update';
export const UPDATE_FORMAT_VERSION = 1;
export const UPDATE_MANIFEST_MEMBER = 'manifest.json';
export const UPDATE_BINARIES = ['smp-server', 'xftp-server'] as const;
export type UpdateBinaryName = (typeof UPDATE_BINARIES)[number];

/** `simplex-pi-relay-update-6.5.3.tar`: the release asset name; its signature is this plus `.minisig`. */
export function updateBundleName(version: string): string {
  return `simplex-pi-relay-update-${version}.tar`;
}

export function isUpdateBundleName(name: string): boolean {
  return /^simplex-pi-relay-update-[0-9A-Za-z.-]+\.tar$/.test(name);
}

export const binaryMember = (name: UpdateBinaryName) => `bin/${name}`;

const version = z.string().regex(/^\d+\.\d+\.\d+(\.\d+)?(-[0-9A-Za-z.]+)?$/, { error: 'must be a simplexmq version like 6.5.2' });

export const updateManifestSchema = z.strictObject({
  format: z.literal(UPDATE_FORMAT),
  formatVersion: z.literal(UPDATE_FORMAT_VERSION, { error: `must be ${UPDATE_FORMAT_VERSION}: a bundle for another version of simplex-pi` }),
  simplexmq: version,
  createdAt: z.iso.datetime(),
  binaries: z
    .array(
      z.strictObject({
        name: z.enum(UPDATE_BINARIES),
        member: z.string(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        bytes: z.number().int().positive(),
      }),
    )
    .refine((list) => UPDATE_BINARIES.every((name) => list.filter((b) => b.name === name).length === 1), { error: `must list ${UPDATE_BINARIES.join(' and ')} once each` })
    .refine((list) => list.every((b) => b.member === binaryMember(b.name)), { error: 'each binary must be the member bin/<its name>' }),
});

export type UpdateManifest = z.output<typeof updateManifestSchema>;
