// Types for host-check.mjs (plain JavaScript so that it runs on an old Node.js; see there).

export interface Requirement {
  /** A program looked up on PATH, or an absolute path. */
  what: string;
  package: string;
  /** build (every build; doctor checks it), test (the test suite), pinned-node (installing the pinned Node.js). */
  need: string;
  why: string;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export function parseRequirements(text: string): Requirement[];
export function readRequirements(): Requirement[];
export function nodeMinimum(): string;
export function versionAtLeast(version: string, minimum: string): boolean;
export function nodeCheck(version?: string, execPath?: string): Check;
export function isPresent(what: string, path?: string): boolean;
export function toolsCheck(requirements?: Requirement[], present?: (what: string) => boolean): Check;
export function formatCheck(check: Check): string;
