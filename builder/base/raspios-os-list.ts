import { z } from 'zod';
import { UserError } from '../errors.ts';
import { fetchText } from '../fetch-text.ts';
import type { BuildLog } from '../log.ts';
import { parseJsonAs } from '../parse-json.ts';

/**
 * Raspberry Pi Imager's repository JSON (os_list), as far as we read it. Entries nest through `subitems` or
 * point elsewhere with `subitems_url`. Only fields we use are validated; Imager adds fields over time.
 */
const osEntry: z.ZodType<OsEntry> = z.lazy(() =>
  z.object({
    name: z.string(),
    url: z.string().optional(),
    extract_sha256: z.string().regex(/^[0-9a-f]{64}$/i).optional(),
    extract_size: z.number().optional(),
    image_download_sha256: z.string().regex(/^[0-9a-f]{64}$/i).optional(),
    image_download_size: z.number().optional(),
    release_date: z.string().optional(),
    init_format: z.string().optional(),
    devices: z.array(z.string()).optional(),
    subitems: z.array(osEntry).optional(),
    subitems_url: z.string().optional(),
  }),
);

export interface OsEntry {
  name: string;
  url?: string;
  extract_sha256?: string;
  extract_size?: number;
  image_download_sha256?: string;
  image_download_size?: number;
  release_date?: string;
  init_format?: string;
  devices?: string[];
  subitems?: OsEntry[];
  subitems_url?: string;
}

const osList = z.object({ os_list: z.array(osEntry) });

export interface ResolvedOs {
  name: string;
  url: string;
  extractSha256: string;
  downloadSha256?: string;
  releaseDate?: string;
  /** The entry's init_format; undefined when it has none (Imager 2.x then offers no customisation). */
  initFormat?: string;
}

export function parseOsList(text: string, source: string): OsEntry[] {
  return parseJsonAs(osList, text, source, {
    notJson: 'is not JSON; is base.imager_json the URL of a Raspberry Pi Imager repository?',
    invalid: 'is not a Raspberry Pi Imager repository',
  }).os_list;
}

/**
 * Find the entry named `name` (depth-first, following `subitems_url` up to three levels) and check it carries
 * what we need to verify it: a URL and the sha256 of the uncompressed image.
 */
export async function resolveOs(jsonUrl: string, name: string, log: BuildLog, depth = 0): Promise<ResolvedOs | undefined> {
  const entries = parseOsList(await fetchText(jsonUrl, 'Raspberry Pi Imager repository JSON', log), jsonUrl);
  const search = async (list: OsEntry[]): Promise<OsEntry | undefined> => {
    for (const entry of list) {
      if (entry.name === name && entry.url) return entry;
      if (entry.subitems) {
        const found = await search(entry.subitems);
        if (found) return found;
      }
    }
    return undefined;
  };
  const found = await search(entries);
  if (found) return toResolved(found, jsonUrl);
  if (depth >= 3) return undefined;
  for (const entry of entries) {
    if (!entry.subitems_url) continue;
    const nested = await resolveOs(new URL(entry.subitems_url, jsonUrl).toString(), name, log, depth + 1);
    if (nested) return nested;
  }
  return undefined;
}

function toResolved(entry: OsEntry, source: string): ResolvedOs {
  if (!entry.extract_sha256) {
    throw new UserError(`"${entry.name}" in ${source} has no extract_sha256, so it cannot be verified; pin base.url and base.sha256 instead`);
  }
  return {
    name: entry.name,
    url: new URL(entry.url!, source).toString(),
    extractSha256: entry.extract_sha256.toLowerCase(),
    downloadSha256: entry.image_download_sha256?.toLowerCase(),
    releaseDate: entry.release_date,
    initFormat: entry.init_format,
  };
}
