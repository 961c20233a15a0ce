import { applyIni, iniSettings, readIni } from './ini.ts';
import type { IniSetting } from '../plan/plan.ts';

/**
 * A relay's INI from an older (or newer) simplexmq, carried into the format this image's release writes. The
 * template is what this release's own `init` writes (so every section, key, comment and separator is the new
 * release's own); every setting the old INI had is put into it. A key the new release no longer has (neither set
 * nor commented out in its template) is dropped, and said so; a key only the new release has keeps its default.
 * The upload/queue password is the one thing of the old file kept as it was, set or absent: it is part of the
 * addresses the group already has.
 */

/**
 * How the template writes the key in that section, set or commented out (`# key = …`, `# key: …`): its separator,
 * or undefined when the template does not name the key there.
 */
function templateSeparator(template: string, section: string, key: string): '=' | ':' | undefined {
  let current = '';
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^\\s*(?:[#;]\\s*)?${escaped}\\s*([=:])`);
  for (const line of template.split('\n')) {
    const header = /^\s*\[(.+)\]\s*$/.exec(line);
    if (header) current = header[1]!;
    else if (current === section) {
      const match = pattern.exec(line);
      if (match) return match[1] as '=' | ':';
    }
  }
  return undefined;
}

/** Whether the template names the key in that section, set or commented out. */
function templateKnows(template: string, section: string, key: string): boolean {
  return templateSeparator(template, section, key) !== undefined;
}

/**
 * applyIni writes every setting `key = value`; where the template writes that key `key: value` (simplexmq 6.4.x, and
 * the sections newer releases add that way), the line is written as the template has it. With the space: simplexmq's
 * reader (ini 0.4.1) loses the first character of a value after `key:` without one.
 */
function withTemplateSeparators(text: string, template: string, settings: readonly IniSetting[]): string {
  let current = '';
  return text
    .split('\n')
    .map((line) => {
      const header = /^\s*\[(.+)\]\s*$/.exec(line);
      if (header) {
        current = header[1]!;
        return line;
      }
      const set = /^([^\s=:#;][^=:]*?) = (.*)$/.exec(line);
      if (!set || !settings.some((s) => s.section === current && s.key === set[1])) return line;
      return templateSeparator(template, current, set[1]!) === ':' ? `${set[1]}: ${set[2]}` : line;
    })
    .join('\n');
}

export interface MigratedIni {
  text: string;
  /** `SECTION.key`: settings of the old file the new release does not know. */
  dropped: string[];
  /** `SECTION.key = value`: settings the new release has that the old file did not. */
  added: string[];
}

export function migrateIni(old: string, template: string): MigratedIni {
  const oldSettings = iniSettings(old);
  // The password is part of every address the group has: carried even where the new release's template does not
  // name it (a release that moved it would otherwise open the relay and change its address without a word).
  const isPassword = (s: IniSetting) => s.section === 'AUTH' && s.key === 'create_password';
  const kept = oldSettings.filter((s) => isPassword(s) || templateKnows(template, s.section, s.key));
  const dropped = oldSettings.filter((s) => !kept.includes(s)).map((s) => `${s.section}.${s.key}`);
  const has = (s: IniSetting) => oldSettings.some((o) => o.section === s.section && o.key === s.key);
  const added = iniSettings(template).filter((s) => !has(s));
  let text = withTemplateSeparators(applyIni(template, kept), template, kept);
  // The password: absent in the old file means none (an open relay), whatever the template's init made up.
  if (readIni(template, 'AUTH', 'create_password') !== undefined && readIni(old, 'AUTH', 'create_password') === undefined) {
    text = text.replace(/^(\s*create_password\s*[=:].*)$/m, '# $1');
  }
  return { text, dropped, added: added.filter((s) => !(s.section === 'AUTH' && s.key === 'create_password')).map((s) => `${s.section}.${s.key} = ${s.value}`) };
}
