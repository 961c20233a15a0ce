import { z } from 'zod';
import { UserError } from '../errors.ts';
import { parseJsonAs } from '../parse-json.ts';

/**
 * simplexmq publishes no SHA256SUMS file: its release workflow appends `SHA2-256(<asset>)= <hex>` lines
 * (openssl's format) to the release notes. Returns every asset -> sha256 found.
 */
export function parseReleaseNoteHashes(body: string): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const match of body.matchAll(/SHA2?-?256\(([^)\s]+)\)\s*=\s*([0-9a-fA-F]{64})\b/g)) {
    const [, asset, hex] = match;
    const previous = hashes.get(asset!);
    if (previous && previous !== hex!.toLowerCase()) {
      throw new UserError(`the release notes give two different sha256 values for ${asset}; refusing to guess`);
    }
    hashes.set(asset!, hex!.toLowerCase());
  }
  return hashes;
}

const githubRelease = z.object({ tag_name: z.string().optional(), body: z.string().nullable() });

/** The `body` of a GitHub release API document. */
export function releaseBody(json: string, source: string): string {
  const release = parseJsonAs(githubRelease, json, source, {
    notJson: 'is not JSON; simplexmq.release_notes_url must point at a GitHub release API document',
    invalid: 'is not a GitHub release document',
  });
  return release.body ?? '';
}
