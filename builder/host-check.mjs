// The host checks that must work on any Node.js, however old: bin/simplex-pi.mjs runs them before it loads
// anything that needs a supported one, so that `simplex-pi doctor` on Debian 11's or Ubuntu 22.04's Node 12 still
// says what is wrong instead of crashing. Plain JavaScript for that reason, and written for Node 12: no `?.`,
// `??`, top-level await, `node:` imports or newer built-ins. Types: host-check.d.mts.
import { accessSync, constants, readFileSync, statSync } from 'fs';

const REQUIREMENTS = new URL('host-requirements.txt', import.meta.url);
const PACKAGE_JSON = new URL('../package.json', import.meta.url);

const SETUP = '`sudo ci/setup-host.sh`';

/** The table in builder/host-requirements.txt (what setup-host.sh installs and doctor checks). */
export function parseRequirements(text) {
  const requirements = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.charAt(0) === '#') continue;
    const match = /^(\S+)\s+(\S+)\s+(\S+)\s+(.+)$/.exec(trimmed);
    if (!match) throw new Error(`builder/host-requirements.txt: "${trimmed}" needs four columns (program, package, need, why)`);
    requirements.push({ what: match[1], package: match[2], need: match[3], why: match[4] });
  }
  return requirements;
}

export function readRequirements() {
  return parseRequirements(readFileSync(REQUIREMENTS, 'utf8'));
}

/** The oldest Node.js simplex-pi runs on: package.json's "engines" (">=X.Y.Z"), the one place it is stated. */
export function nodeMinimum() {
  const engines = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')).engines;
  const match = /^>=\s*(\d+\.\d+\.\d+)$/.exec((engines && engines.node) || '');
  if (!match) throw new Error('package.json: engines.node must read ">=X.Y.Z" (ci/setup-host.sh and doctor read it)');
  return match[1];
}

/** Whether a version ("v18.20.4", "18.19.1") is at least `minimum` ("18.19.0"); suffixes are ignored. */
export function versionAtLeast(version, minimum) {
  const parts = (v) => v.replace(/^v/, '').split(/[^0-9.]/)[0].split('.').map(Number);
  const have = parts(version);
  const need = parts(minimum);
  for (let i = 0; i < Math.max(have.length, need.length); i++) {
    const a = have[i] || 0;
    const b = need[i] || 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** The node check: ok when this Node.js is new enough to run simplex-pi. */
export function nodeCheck(version = process.versions.node, execPath = process.execPath) {
  const minimum = nodeMinimum();
  if (versionAtLeast(version, minimum)) {
    return { name: 'node', ok: true, detail: `Node.js ${version} (${execPath}); simplex-pi needs ${minimum} or newer` };
  }
  return {
    name: 'node',
    ok: false,
    detail:
      `Node.js ${version} (${execPath}) is too old: simplex-pi needs ${minimum} or newer (package.json "engines"). ` +
      `${SETUP} installs the distribution's Node.js where it is new enough, else the build pinned in ci/node-pins.txt`,
  };
}

/** Whether a requirement is on this host: an absolute path must exist, a program must be on PATH. */
export function isPresent(what, path = process.env.PATH || '') {
  if (what.charAt(0) === '/') {
    try {
      statSync(what);
      return true;
    } catch (error) {
      return false;
    }
  }
  // The directories a root shell (sudo's secure_path) searches too: building runs as root, so a tool in
  // /usr/sbin counts even when the user's own PATH lacks it.
  const dirs = path.split(':').concat(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(`${dir}/${what}`, constants.X_OK);
      return true;
    } catch (error) {
      // not in this directory
    }
  }
  return false;
}

/** The tools check: every `build` requirement present, else each missing one with its package and why. */
export function toolsCheck(requirements = readRequirements(), present = isPresent) {
  const needed = requirements.filter((r) => r.need === 'build');
  const missing = needed.filter((r) => !present(r.what));
  if (!missing.length) return { name: 'tools', ok: true, detail: `${needed.length} programs and files found` };
  const packages = missing.map((r) => r.package).filter((p, i, all) => all.indexOf(p) === i);
  const lines = missing.map((r) => `${r.what} (package ${r.package}): ${r.why}`);
  return {
    name: 'tools',
    ok: false,
    detail: [`missing ${missing.length} of ${needed.length}: \`sudo apt-get install ${packages.join(' ')}\`, or ${SETUP}`].concat(lines).join('\n'),
  };
}

/** One check as doctor prints it; a detail's further lines are indented under the first. */
export function formatCheck(check) {
  const [first, ...rest] = check.detail.split('\n');
  const head = `${check.ok ? 'ok  ' : 'FAIL'}  ${check.name.padEnd(7)} `;
  return [head + first].concat(rest.map((line) => ' '.repeat(head.length + 2) + line)).join('\n');
}
