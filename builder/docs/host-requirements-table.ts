import { readRequirements } from '../host-check.mjs';

/** When each kind of requirement is needed, in the words of builder/host-requirements.txt's header. */
const NEEDED_FOR: Record<string, string> = {
  build: 'building',
  test: 'the tests only',
  'pinned-node': 'the pinned Node.js',
};

/** README.md's table of builder/host-requirements.txt: the same rows setup-host.sh installs and doctor checks. */
export function hostRequirementsTable(): string {
  const rows = readRequirements().map((r) => {
    const neededFor = NEEDED_FOR[r.need];
    if (!neededFor) throw new Error(`builder/host-requirements.txt: ${r.what} is needed for "${r.need}"; use build, test or pinned-node`);
    return `| \`${r.what}\` | \`${r.package}\` | ${neededFor} | ${r.why.replace(/\|/g, '\\|')} |`;
  });
  return ['| program or file | package | needed for | why |', '|---|---|---|---|', ...rows].join('\n');
}
