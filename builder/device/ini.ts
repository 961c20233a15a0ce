import type { IniSetting } from '../plan/plan.ts';

/**
 * Apply settings to a simplexmq INI file as `init` wrote it (docs/simplexmq-and-tor.md#ini-format): `key = value`
 * lines in `[SECTION]`s, comments only as whole lines. A key that is set is replaced in place; one that init wrote commented out
 * (`# key = …`) is set on that line, so the file keeps init's order and comments; a missing key is added at the
 * end of its section, and a missing section at the end of the file. Runs on the device.
 */
export function applyIni(text: string, settings: readonly IniSetting[]): string {
  const lines = text.replace(/\n$/, '').split('\n');
  for (const { section, key, value } of settings) {
    if (/[\r\n]/.test(value) || /^\s|\s$/.test(value)) throw new Error(`INI value for ${section}.${key} must be one line without surrounding spaces`);
    const line = `${key} = ${value}`;
    const start = lines.findIndex((l) => l.trim() === `[${section}]`);
    if (start === -1) {
      lines.push('', `[${section}]`, line);
      continue;
    }
    let end = lines.findIndex((l, i) => i > start && /^\s*\[.+\]\s*$/.test(l));
    if (end === -1) end = lines.length;
    const keyPattern = new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*[=:]`);
    const commentedPattern = new RegExp(`^\\s*[#;]\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*[=:]`);
    const set = lines.findIndex((l, i) => i > start && i < end && keyPattern.test(l));
    if (set !== -1) {
      lines[set] = line;
      // A key given twice would be ambiguous: drop later copies.
      for (let i = end - 1; i > set; i--) if (keyPattern.test(lines[i]!)) lines.splice(i, 1);
      continue;
    }
    const commented = lines.findIndex((l, i) => i > start && i < end && commentedPattern.test(l));
    if (commented !== -1) {
      lines[commented] = line;
      continue;
    }
    // After the section's last non-blank line.
    let at = end;
    while (at - 1 > start && !lines[at - 1]!.trim()) at--;
    lines.splice(at, 0, line);
  }
  return `${lines.join('\n')}\n`;
}

/** Every `key = value` (or `key: value`) the file sets, by section, in order, as simplexmq's INI reader sees them. */
export function iniSettings(text: string): IniSetting[] {
  const settings: IniSetting[] = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(line);
    if (kv && section) settings.push({ section, key: kv[1]!, value: kv[2]! });
  }
  return settings;
}

/** The value of `key` in `[section]`, as simplexmq's INI reader sees it (either separator). */
export function readIni(text: string, section: string, key: string): string | undefined {
  return iniSettings(text).find((s) => s.section === section && s.key === key)?.value;
}
