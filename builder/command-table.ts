import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UserError } from './errors.ts';

/**
 * A command's flags declared once: the same entry is node:util's parseArgs option, a part of the usage line, a
 * line of `--help`, and a row of the README's table (ci/docs.ts). Used by the build host's CLI (cli-commands.ts)
 * and the device program (device/commands.ts), so it imports nothing but built-ins and errors.ts.
 */
export interface Flag {
  /** The long name, without dashes. */
  name: string;
  type: 'string' | 'boolean';
  short?: string;
  /** A string flag's value in usage: a name (FILE); for a flag with `choices`, they are shown instead. */
  value?: string;
  /** The only values a string flag takes; anything else is refused with them named. */
  choices?: readonly string[];
  /** parseArgs' default (a string flag's value is always text). */
  default?: string | boolean;
  /** The default in words, where it is not a fixed value (`recipes/family.yaml`, `$TMPDIR or /tmp`). */
  defaultText?: string;
  /** What to say when it is missing; a flag that has this is required. */
  required?: string;
  /** Usage shows this flag inside the brackets of another: `[--base X [--base-sha256 HEX]]`. */
  within?: string;
  help: string;
}

export interface Command {
  /** As typed: `build`, or `recipes new` for a subcommand. */
  name: string;
  /** The one positional argument it takes, and what to say when it is not exactly one. */
  positional?: { name: string; missing: string };
  flags: Flag[];
  /** Flags given as one of several forms, shown as `(--out DIR | --secret-key FILE --public-key FILE)` (checked by the command). */
  forms?: string[][];
  summary: string;
}

/** Parsed arguments; `V` is the shape the command's flags give (a string flag is text, a boolean one true/false). */
export interface Parsed<V> {
  values: V;
  positional: string | undefined;
}

/** Whether the arguments ask for a command's help rather than running it. */
export const wantsHelp = (args: string[]) => args.includes('--help') || args.includes('-h');

/** The arguments checked against the table: unknown flags, a missing positional or required flag are refused. */
export function parseCommand<V = Record<string, string | boolean | undefined>>(command: Command, args: string[]): Parsed<V> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const flag of command.flags) {
    options[flag.name] = { type: flag.type, ...(flag.short && { short: flag.short }), ...(flag.default !== undefined && { default: flag.default }) };
  }
  const { values, positionals } = parseArgs({ args, options, allowPositionals: command.positional !== undefined, strict: true });
  if (command.positional && positionals.length !== 1) throw new UserError(command.positional.missing);
  for (const flag of command.flags) {
    // An empty value (`--out ''`, an unset shell variable) is no value: never the current directory or a default.
    if (flag.type === 'string' && values[flag.name] === '') {
      throw new UserError(flag.required ?? `--${flag.name} was given an empty value; give ${flag.value ?? 'a value'} or leave the option out`);
    }
    if (flag.required && values[flag.name] === undefined) throw new UserError(flag.required);
    const value = values[flag.name];
    if (flag.choices && typeof value === 'string' && !flag.choices.includes(value)) {
      throw new UserError(`--${flag.name} must be ${choicesText(flag.choices, ' or ')} (got "${value}")`);
    }
  }
  return { values: values as V, positional: positionals[0] };
}

/** Choices in words: a run of whole numbers as `0–9`, others as `xz or none` (`xz|none` in usage). */
function choicesText(choices: readonly string[], separator: string): string {
  const numbers = choices.map(Number);
  const run = choices.length > 2 && numbers.every((n, i) => Number.isInteger(n) && String(n) === choices[i] && (i === 0 || n === numbers[i - 1]! + 1));
  if (run) return `${choices[0]}${separator === '|' ? '-' : '–'}${choices.at(-1)}`;
  return separator === '|' ? choices.join('|') : `${choices.slice(0, -1).join(', ')}${choices.length > 1 ? separator : ''}${choices.at(-1)}`;
}

/** `--name VALUE`, as usage and the tables show a flag. */
export function flagText(flag: Flag): string {
  if (flag.type !== 'string') return `--${flag.name}`;
  return `--${flag.name} ${flag.choices ? choicesText(flag.choices, '|') : (flag.value ?? 'VALUE')}`;
}

/** The parts of a usage line after the command's name, each kept whole when the line is wrapped. */
function synopsisParts(command: Command): string[] {
  const inForm = new Set((command.forms ?? []).flat());
  const parts: string[] = command.positional ? [command.positional.name] : [];
  let formsShown = false;
  for (const flag of command.flags) {
    if (flag.within) continue;
    if (inForm.has(flag.name)) {
      if (!formsShown) parts.push(`(${command.forms!.map((form) => form.map((name) => flagText(flagNamed(command, name))).join(' ')).join(' | ')})`);
      formsShown = true;
      continue;
    }
    const nested = command.flags.filter((f) => f.within === flag.name).map((f) => ` [${flagText(f)}]`).join('');
    parts.push(flag.required ? `${flagText(flag)}${nested}` : `[${flagText(flag)}${nested}]`);
  }
  return parts;
}

function flagNamed(command: Command, name: string): Flag {
  const flag = command.flags.find((f) => f.name === name);
  if (!flag) throw new Error(`command ${command.name}: its forms name --${name}, which it does not declare`);
  return flag;
}

/** The usage line(s) of a command after `indent`, wrapped at `width` with continuation lines under its first flag. */
export function synopsis(program: string, command: Command, width = 90, indent = ''): string {
  const head = `${indent}${program} ${command.name}`;
  const lines: string[] = [];
  let line = head;
  for (const part of synopsisParts(command)) {
    if (line.length + 1 + part.length > width && line.length > head.length) {
      lines.push(line);
      line = ' '.repeat(head.length);
    }
    line += ` ${part}`;
  }
  lines.push(line);
  return lines.join('\n');
}

/** The default as help and the tables show it: in words, the fixed value, or nothing. */
export function defaultOf(flag: Flag): string | undefined {
  if (flag.defaultText) return flag.defaultText;
  return typeof flag.default === 'string' ? flag.default : undefined;
}

/** Text that starts at column `indent`, wrapped at `width`: every line after the first is indented to that column. */
export function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** `simplex-pi COMMAND --help`: usage, what the command does, and each flag with its default. */
export function commandHelp(program: string, command: Command, width = 110): string {
  const flags = command.flags.map((flag) => {
    const name = `${flag.short ? `-${flag.short}, ` : ''}${flagText(flag)}`;
    const fallback = defaultOf(flag);
    const help = `${flag.help}${fallback === undefined ? '' : ` (default: ${fallback})`}`;
    return `  ${name.padEnd(26)}${name.length > 26 ? `\n${' '.repeat(28)}` : ''}${wrap(help, width, 28)}`;
  });
  return [synopsis(program, command, width, 'Usage: '), '', wrap(command.summary, width, 0), ...(flags.length ? ['', 'Options:', ...flags] : [])].join('\n');
}

/** A program's `--help`: its title, every command's usage line, then what each command does. */
export function programHelp(program: string, commands: Command[], text: { title: string; more?: string[]; footer?: string }, width = 110): string {
  const summaries = commands
    .filter((c) => !c.name.includes(' '))
    .map((c) => `${c.name.length < 9 ? c.name.padEnd(9) : `${c.name}\n${' '.repeat(9)}`}${wrap(c.summary, width, 9)}`);
  return [
    text.title,
    '',
    'Usage:',
    ...commands.map((c) => synopsis(program, c, 92, '  ')),
    ...(text.more ?? []).map((line) => `  ${line}`),
    '',
    ...summaries,
    ...(text.footer ? ['', wrap(text.footer, width, 0)] : []),
  ].join('\n');
}

/** A markdown table cell: one line, `|` escaped. */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

/** Every usage line, as a markdown code block. */
export function synopsisBlock(program: string, commands: Command[]): string {
  return ['```', ...commands.map((c) => synopsis(program, c)), '```'].join('\n');
}

/** A markdown table of the commands: each usage line and what the command does. */
export function commandTable(program: string, commands: Command[]): string {
  const rows = commands.map((c) => `| \`${cell(synopsis(program, c, Infinity))}\` | ${cell(c.summary)} |`);
  return ['| command | what it does |', '|---|---|', ...rows].join('\n');
}

/** A markdown table of every flag of the commands, with its default. */
export function flagTable(commands: Command[]): string {
  const rows = commands.flatMap((command) =>
    command.flags.map((flag) => {
      // A default in words is prose; a fixed value is code.
      const fallback = flag.defaultText ?? (typeof flag.default === 'string' ? `\`${flag.default}\`` : '');
      const name = `\`${cell(flagText(flag))}\`${flag.short ? ` (\`-${flag.short}\`)` : ''}`;
      return `| \`${command.name}\` | ${name} | ${cell(fallback)} | ${cell(flag.help)} |`;
    }),
  );
  return ['| command | option | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
