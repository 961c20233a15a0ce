import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * systemd's start-up ordering read from unit files, for one question systemd-analyze cannot answer offline: what a
 * unit can end up waiting for. `After=` in a unit and `Before=` naming it in another both order it later; a
 * service without `DefaultDependencies=no` is also after sysinit.target and basic.target. Drop-ins, templates and
 * conditions are not modelled; the units that matter here have none that change ordering.
 */
export type UnitOrder = Map<string, Set<string>>;

function unitSection(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      section = line;
      continue;
    }
    const at = line.indexOf('=');
    if (section === '[Unit]' && at > 0) pairs.push([line.slice(0, at).trim(), line.slice(at + 1).trim()]);
  }
  return pairs;
}

/** Every unit file in `dirs` (later directories win, as /etc wins over /usr/lib). */
export async function readUnitOrder(dirs: string[]): Promise<UnitOrder> {
  const texts = new Map<string, string>();
  for (const dir of dirs) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!/\.(service|target|socket|mount|timer|path|slice)$/.test(name)) continue;
      const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text !== undefined) texts.set(name, text);
    }
  }
  const after: UnitOrder = new Map();
  const add = (later: string, earlier: string) => {
    if (!after.has(later)) after.set(later, new Set());
    after.get(later)!.add(earlier);
  };
  for (const [name, text] of texts) {
    const pairs = unitSection(text);
    if (name.endsWith('.service') && !pairs.some(([k, v]) => k === 'DefaultDependencies' && /^(no|false|0)$/.test(v))) {
      add(name, 'sysinit.target');
      add(name, 'basic.target');
    }
    for (const [key, value] of pairs) {
      for (const other of value.split(/\s+/).filter(Boolean)) {
        if (key === 'After') add(name, other);
        if (key === 'Before') add(other, name);
      }
    }
  }
  return after;
}

/** Every unit `unit` is ordered after, directly or through others. */
export function orderedAfter(order: UnitOrder, unit: string): Set<string> {
  const seen = new Set<string>();
  const pending = [unit];
  while (pending.length) {
    for (const earlier of order.get(pending.pop()!) ?? []) {
      if (!seen.has(earlier)) {
        seen.add(earlier);
        pending.push(earlier);
      }
    }
  }
  return seen;
}
