import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The backups this computer restored, and onto what: restoring one backup onto two cards is the classic mistake
 * (two Pis publishing the same onion services fight over them), and the second restore is the moment to say so.
 * Holds no secret: the backup's id, the card, the time. In $XDG_STATE_HOME/simplex-pi (~/.local/state/simplex-pi).
 */

export interface RestoreRecord {
  at: string;
  id: string;
  card: string;
}

export function restoreLogPath(env: NodeJS.ProcessEnv = process.env): string {
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local/state');
  return join(state, 'simplex-pi', 'restores.log');
}

export async function earlierRestores(id: string, path = restoreLogPath()): Promise<RestoreRecord[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as RestoreRecord];
      } catch {
        return [];
      }
    })
    .filter((r) => r.id === id);
}

export async function recordRestore(record: RestoreRecord, path = restoreLogPath()): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  await appendFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}
