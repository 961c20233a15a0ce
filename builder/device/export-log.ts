import { exists } from '../exists.ts';
import { STATE } from '../plan/layout.ts';
import { appendJsonLine, lastJsonLine } from './json-lines.ts';

/** Every time secrets left the Pi for a stick: so the owner can see on `status` when, where, and whether it was expected. */
export interface ExportRecord {
  at: string;
  kind: 'secrets' | 'encrypted';
  /** first: the one automatic export after first boot; root: `sudo simplex-pi export`; plugged: encrypt_to on a stick plugged in. */
  trigger: 'first' | 'root' | 'plugged';
  device: string;
  /** udev's ID_SERIAL of the stick and its filesystem's volume id, to recognise it. */
  serial: string | null;
  filesystem: string | null;
}

export async function recordExport(record: ExportRecord): Promise<void> {
  await appendJsonLine(STATE.exportLog, record);
}

/** The last export of secrets; undefined if there was none. Throws EACCES for a user who may not know. */
export async function lastExport(): Promise<ExportRecord | undefined> {
  return lastJsonLine<ExportRecord>(STATE.exportLog);
}

export function describeExport(record: ExportRecord): string {
  const how = record.kind === 'encrypted' ? 'encrypted' : 'in the clear';
  const why = { first: 'the automatic first export', root: '`simplex-pi export` by root', plugged: 'a stick plugged in' }[record.trigger];
  return `${record.at}, ${how}, to ${record.device}${record.serial ? ` (${record.serial})` : ''}: ${why}`;
}

/** Whether the one automatic export of secrets is still to come (STATE.exportPending). Throws EACCES for a user who may not know. */
export async function exportArmed(): Promise<boolean> {
  return exists(STATE.exportPending);
}
