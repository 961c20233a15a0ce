import type { BaseSpec, BinarySourceSpec, Recipe } from '../recipe/schema.ts';
import { SIMPLEXMQ_ASSET_SUFFIX, SIMPLEXMQ_RELEASE_BASE } from '../recipe/schema.ts';

/**
 * The BuildPlan: everything the pipeline and the device program need to know, derived from a recipe without any
 * I/O. It is serialised to /etc/simplex-pi/plan.json in the image.
 */

export const PLAN_SCHEMA_VERSION = 1;

export type BinaryName = 'smp-server' | 'xftp-server';

export interface BinaryInput {
  name: BinaryName;
  /** The release asset name, which is also what the `SHA2-256(<asset>)=` line in the release notes names. */
  asset: string;
  url?: string;
  path?: string;
  /** A pinned sha256, or `release-notes` to read it from the release. */
  sha256: string;
  installPath: string;
}

export interface SmpInstance {
  index: number;
  /** Unit instance and directory suffix, e.g. smp1. */
  name: string;
  localPort: number;
}

export interface BuildPlan {
  schemaVersion: number;
  name: string;
  description: string;
  base: BaseSpec;
  smp: { instances: SmpInstance[] };
  xftp: { enabled: boolean; localPort: number };
  simplexmq: { version: string; releaseNotesUrl: string; binaries: BinaryInput[] };
  /** Debian packages the `packages` stage installs from the base's own apt sources. */
  packages: string[];
}

/**
 * Tor, the firewall, Node for the first-boot program, and what the GHC-built simplexmq binaries link against
 * (openssl is also called by `init`; libgmp, libffi and libnuma are the Haskell runtime's libraries).
 */
export const RUNTIME_PACKAGES = ['tor', 'nftables', 'nodejs', 'openssl', 'libgmp10', 'libffi8', 'libnuma1', 'zlib1g'];

export const SMP_LOCAL_PORT_BASE = 5300;
export const XFTP_LOCAL_PORT = 5443;
export const BINARY_DIR = '/usr/local/bin';

function expand(template: string, version: string): string {
  return template.replaceAll('{version}', version);
}

function binaryInput(name: BinaryName, spec: BinarySourceSpec | undefined, version: string): BinaryInput {
  const asset = `${name}-${SIMPLEXMQ_ASSET_SUFFIX}`;
  const source = spec ?? { sha256: 'release-notes' };
  const input: BinaryInput = { name, asset, sha256: source.sha256, installPath: `${BINARY_DIR}/${name}` };
  if (source.path) input.path = source.path;
  else input.url = expand(source.url ?? `${SIMPLEXMQ_RELEASE_BASE}/${asset}`, version);
  return input;
}

export interface PlanOverrides {
  base?: BaseSpec;
}

export function resolvePlan(recipe: Recipe, overrides: PlanOverrides = {}): BuildPlan {
  const version = recipe.simplexmq.version;
  const instances = Array.from({ length: recipe.smp.instances }, (_, i) => ({
    index: i + 1,
    name: `smp${i + 1}`,
    localPort: SMP_LOCAL_PORT_BASE + i + 1,
  }));
  const binaries = [binaryInput('smp-server', recipe.simplexmq.smp_server, version)];
  if (recipe.xftp.enabled) binaries.push(binaryInput('xftp-server', recipe.simplexmq.xftp_server, version));
  return {
    schemaVersion: PLAN_SCHEMA_VERSION,
    name: recipe.name,
    description: recipe.description,
    base: overrides.base ?? recipe.base,
    smp: { instances },
    xftp: { enabled: recipe.xftp.enabled, localPort: XFTP_LOCAL_PORT },
    simplexmq: {
      version,
      releaseNotesUrl: expand(recipe.simplexmq.release_notes_url, version),
      binaries,
    },
    packages: [...RUNTIME_PACKAGES],
  };
}
