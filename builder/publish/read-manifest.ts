import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseJsonAs } from '../parse-json.ts';
import { PI_MODELS } from '../recipe/schema.ts';

/**
 * A build's manifest.json read back (by the release scripts, possibly from an earlier release made by an earlier
 * version): only the fields they use are checked, unknown ones are dropped.
 */

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const outputFile = z.object({ name: z.string().min(1), size: z.number().int().nonnegative(), sha256 });

export const releaseManifestSchema = z.object({
  manifestVersion: z.union([z.literal(1), z.literal(2)]),
  tool: z.object({ name: z.literal('simplex-pi'), version: z.string(), commit: z.string().optional() }),
  /** Version 1: the build's clock. */
  builtAt: z.string().optional(),
  /** Version 2: the image's SOURCE_DATE_EPOCH (image/source-date-epoch.ts), which replaced the clock. */
  sourceDate: z.object({ epoch: z.number(), iso: z.string(), from: z.string() }).optional(),
  recipe: z.object({ name: z.string().min(1), sha256 }),
  plan: z.object({ description: z.string().default(''), models: z.array(z.enum(PI_MODELS)).optional() }),
  base: z.object({
    provider: z.enum(['raspios', 'debian', 'file']),
    sha256,
    description: z.string(),
    url: z.string().optional(),
    downloadSha256: sha256.optional(),
    releaseDate: z.string().optional(),
    initFormat: z.string(),
    suite: z.string().optional(),
  }),
  packages: z.array(z.object({ name: z.string(), version: z.string(), architecture: z.string() })),
  simplexmq: z.object({
    version: z.string(),
    binaries: z.array(z.object({ name: z.string(), sha256, sha256Source: z.string().optional() })),
  }),
  outputs: z.array(outputFile),
}).refine((m) => m.builtAt !== undefined || m.sourceDate !== undefined, { error: 'has neither sourceDate nor builtAt' });

export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

/** The image's date, ISO 8601: its SOURCE_DATE_EPOCH, or for a manifest of version 1 the time it was built. */
export function manifestDate(manifest: Pick<ReleaseManifest, 'builtAt' | 'sourceDate'>): string {
  return manifest.sourceDate?.iso ?? manifest.builtAt ?? '1970-01-01T00:00:00.000Z';
}

export function parseReleaseManifest(text: string, source: string): ReleaseManifest {
  return parseJsonAs(releaseManifestSchema, text, source, {
    notJson: 'is not JSON; is it a manifest.json written by simplex-pi build?',
    invalid: 'is not a simplex-pi build manifest',
  });
}

export async function readReleaseManifest(path: string): Promise<ReleaseManifest> {
  return parseReleaseManifest(await readFile(path, 'utf8'), path);
}
