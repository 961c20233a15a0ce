import { open, readFile, rm } from 'node:fs/promises';
import { UPDATE_LOCK } from '../plan/layout.ts';

/**
 * One relay update at a time, and the watchdog out of its way (layout.ts UPDATE_LOCK): a file naming the process
 * that holds it. A holder that died (killed, the Pi rebooted: /run is emptied) holds nothing.
 */

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process updating the relays now, if one is. */
export async function updateUnderWay(path = UPDATE_LOCK): Promise<number | undefined> {
  const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** Take the lock, or say who holds it. Released by the returned function. */
export async function takeUpdateLock(path = UPDATE_LOCK): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await updateUnderWay(path);
      if (holder) throw new Error(`another relay update is under way (process ${holder}); wait for it to finish (\`journalctl -f\` shows it)`);
      await rm(path, { force: true });
    }
  }
  throw new Error(`${path} keeps coming back: another update is starting at the same time`);
}
