import { readFile } from 'node:fs/promises';
import { STATE } from '../plan/layout.ts';

/**
 * STATE.restored: written by `simplex-pi restore` (restore/restore-card.ts) into a card that was never booted, read
 * by first boot (which keeps the restored identities and migrates their INI) and by `status`, for good.
 */
export interface RestoredRecord {
  /** The backup's manifest: its id, when and where it was made, the simplexmq release its relays ran. */
  id: string;
  createdAt: string;
  host: string;
  simplexmq: string;
  restoredAt: string;
  /**
   * False while restore writes the files (it writes this record first and again last): a card whose restore was
   * cut off (Ctrl-C, a pulled reader) has some identities of the backup and not others, and first boot refuses it.
   */
  complete: boolean;
  /** Set by the first boot that adopted the identities: the simplexmq release their INI now fits. */
  adoptedFor?: string;
}

/** The backup this card was restored from; undefined for a card that made its own identities. */
export async function restoredFrom(path = STATE.restored): Promise<RestoredRecord | undefined> {
  return readFile(path, 'utf8').then(
    (text) => JSON.parse(text) as RestoredRecord,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    },
  );
}
