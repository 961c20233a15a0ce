import { describe, expect, it } from 'vitest';
import { COMMANDS, findCommand } from '../../builder/cli-commands.ts';
import { type Command, commandHelp, parseCommand, synopsis } from '../../builder/command-table.ts';

const demo: Command = {
  name: 'demo',
  positional: { name: 'DIR', missing: 'demo takes one directory' },
  flags: [
    { name: 'base', type: 'string', value: 'X|Y', help: 'The base.' },
    { name: 'base-sha256', type: 'string', value: 'HEX', within: 'base', help: 'Its sha256.' },
    { name: 'out', type: 'string', value: 'DIR', help: 'Out.' },
    { name: 'secret', type: 'string', value: 'FILE', help: 'Secret.' },
    { name: 'key', type: 'string', value: 'FILE', required: 'demo needs --key FILE', help: 'The key.' },
    { name: 'level', type: 'string', choices: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], default: '6', help: 'Level.' },
    { name: 'mode', type: 'string', choices: ['fast', 'slow'], help: 'Mode.' },
    { name: 'verbose', type: 'boolean', short: 'v', default: false, help: 'Talk.' },
  ],
  forms: [['out'], ['secret']],
  summary: 'A demonstration.',
};

describe('a command table', () => {
  it('gives the usage line: nested, alternative, required and optional flags', () => {
    expect(synopsis('p', demo, Infinity)).toBe('p demo DIR [--base X|Y [--base-sha256 HEX]] (--out DIR | --secret FILE) --key FILE [--level 0-9] [--mode fast|slow] [--verbose]');
    expect(synopsis('p', demo, 40)).toBe(['p demo DIR', '       [--base X|Y [--base-sha256 HEX]]', '       (--out DIR | --secret FILE)', '       --key FILE [--level 0-9]', '       [--mode fast|slow] [--verbose]'].join('\n'));
  });

  it('parses with defaults, and refuses what the table does not allow with its message', () => {
    expect(parseCommand(demo, ['d', '--key', 'k', '-v'])).toEqual({ values: { key: 'k', level: '6', verbose: true }, positional: 'd' });
    expect(() => parseCommand(demo, ['--key', 'k'])).toThrow('demo takes one directory');
    expect(() => parseCommand(demo, ['d'])).toThrow('demo needs --key FILE');
    expect(() => parseCommand(demo, ['d', '--key', 'k', '--fast'])).toThrow("Unknown option '--fast'");
    // An empty value is no value: a required flag says what it needs, an optional one that it was empty.
    expect(() => parseCommand(demo, ['d', '--key', ''])).toThrow('demo needs --key FILE');
    expect(() => parseCommand(demo, ['d', '--key', 'k', '--out', ''])).toThrow('--out was given an empty value; give DIR or leave the option out');
    // Choices: named in words, a run of numbers as a range.
    expect(() => parseCommand(demo, ['d', '--key', 'k', '--level', '10'])).toThrow('--level must be 0–9 (got "10")');
    expect(() => parseCommand(demo, ['d', '--key', 'k', '--mode', 'medium'])).toThrow('--mode must be fast or slow (got "medium")');
    expect(parseCommand(demo, ['d', '--key', 'k', '--mode', 'slow', '--level', '9']).values).toMatchObject({ mode: 'slow', level: '9' });
  });

  it('shows each flag with its default in the help', () => {
    const help = commandHelp('p', demo);
    expect(help).toMatch(/^Usage: p demo DIR /);
    expect(help).toContain('  --level 0-9               Level. (default: 6)');
    expect(help).toContain('  -v, --verbose             Talk.');
  });
});

describe("simplex-pi's commands", () => {
  it('finds a subcommand before its command', () => {
    expect(findCommand(['recipes', 'new', '--group-size', '3'])).toMatchObject({ command: { name: 'recipes new' }, rest: ['--group-size', '3'] });
    expect(findCommand(['recipes'])).toMatchObject({ command: { name: 'recipes' }, rest: [] });
    expect(findCommand(['bulid'])).toBeUndefined();
  });

  it('declares each flag once per command, and nests only under a flag it has', () => {
    for (const command of COMMANDS) {
      const names = command.flags.map((f) => f.name);
      expect(new Set(names).size, command.name).toBe(names.length);
      for (const flag of command.flags) if (flag.within) expect(names, `${command.name} --${flag.name}`).toContain(flag.within);
    }
  });
});
