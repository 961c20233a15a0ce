import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import fetch, { type Response } from 'node-fetch';
import { UserError, messageOf } from '../errors.ts';
import { sha256File } from '../hash.ts';

/**
 * SHA256SUMS, signatures and Imager JSON are small; a "small" file larger than this is refused rather than held
 * in memory (a hostile server could otherwise send gigabytes).
 */
export const SMALL_FILE_LIMIT = 16 * 1024 * 1024;

/** A download that sends nothing for this long is given up, with a message. */
const STALL_MS = 60_000;

/** Where a release is read from: an output directory, or the http(s) URL of a directory holding the same files. */
export interface ReleaseSource {
  /** The directory or URL, for messages. */
  readonly location: string;
  /** The whole of a small file; undefined when it does not exist. */
  readSmall(name: string): Promise<Buffer | undefined>;
  /** The sha256 of a file of any size, read as a stream and never held in memory; undefined when it does not exist. */
  sha256(name: string): Promise<string | undefined>;
  /** The files present, when the source can list them (a URL cannot). */
  list(): Promise<string[] | undefined>;
}

export function isUrl(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

export async function openReleaseSource(target: string): Promise<ReleaseSource> {
  return isUrl(target) ? new HttpSource(target) : DirectorySource.open(target);
}

function missing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function tooLarge(name: string, location: string): UserError {
  return new UserError(`${name} at ${location} is larger than ${SMALL_FILE_LIMIT / 1024 / 1024} MiB; it cannot be a SHA256SUMS, signature or Imager repository file`);
}

class DirectorySource implements ReleaseSource {
  private constructor(readonly location: string) {}

  static async open(path: string): Promise<DirectorySource> {
    const dir = resolve(path);
    try {
      if (!(await stat(dir)).isDirectory()) throw new UserError(`${dir} is not a directory; verify takes a release directory or its http(s) URL`);
    } catch (error) {
      if (missing(error)) throw new UserError(`${dir} does not exist; verify takes a release directory or its http(s) URL`);
      throw error;
    }
    return new DirectorySource(dir);
  }

  async readSmall(name: string): Promise<Buffer | undefined> {
    const path = join(this.location, name);
    try {
      if ((await stat(path)).size > SMALL_FILE_LIMIT) throw tooLarge(name, this.location);
      return await readFile(path);
    } catch (error) {
      if (missing(error)) return undefined;
      throw error;
    }
  }

  async sha256(name: string): Promise<string | undefined> {
    try {
      return await sha256File(join(this.location, name));
    } catch (error) {
      if (missing(error)) return undefined;
      throw error;
    }
  }

  async list(): Promise<string[]> {
    return (await readdir(this.location, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  }
}

class HttpSource implements ReleaseSource {
  readonly location: string;

  constructor(url: string) {
    // Names are resolved inside the URL's directory: "https://host/r/v1" and "https://host/r/v1/" mean the same.
    this.location = url.endsWith('/') ? url : `${url}/`;
  }

  private urlOf(name: string): string {
    return new URL(encodeURIComponent(name), this.location).href;
  }

  /**
   * GET `name`; undefined for 404/410. The body must keep flowing: a connection that sends nothing for
   * STALL_MS is aborted with a message, rather than leaving verify waiting forever.
   */
  private async get(name: string): Promise<{ response: Response; alive: () => void; end: () => void; stalled: () => boolean } | undefined> {
    const url = this.urlOf(name);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), STALL_MS);
    };
    const end = () => clearTimeout(timer);
    alive();
    let response: Response;
    try {
      response = await fetch(url, { headers: { 'user-agent': 'simplex-pi' }, redirect: 'follow', signal: controller.signal });
    } catch (error) {
      end();
      throw new UserError(`could not download ${name} from ${url}: ${controller.signal.aborted ? `no answer for ${STALL_MS / 1000} s` : messageOf(error)}`);
    }
    if (response.status === 404 || response.status === 410) {
      end();
      return undefined;
    }
    if (!response.ok) {
      end();
      throw new UserError(`could not download ${name}: HTTP ${response.status} from ${url}`);
    }
    return { response, alive, end, stalled: () => controller.signal.aborted };
  }

  /**
   * Each chunk of the body, with the stall timer reset as data arrives and a message if the transfer breaks.
   * `found` is called once the file turned out to exist (an empty file yields no chunk, yet exists).
   */
  private async *body(name: string, found: () => void): AsyncGenerator<Buffer> {
    const got = await this.get(name);
    if (!got) return;
    found();
    try {
      for await (const chunk of got.response.body!) {
        got.alive();
        yield chunk as Buffer;
      }
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(`download of ${name} from ${this.urlOf(name)} broke off: ${got.stalled() ? `no data for ${STALL_MS / 1000} s` : messageOf(error)}`);
    } finally {
      got.end();
    }
  }

  async readSmall(name: string): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    let found = false;
    for await (const chunk of this.body(name, () => (found = true))) {
      size += chunk.length;
      if (size > SMALL_FILE_LIMIT) throw tooLarge(name, this.location);
      chunks.push(chunk);
    }
    return found ? Buffer.concat(chunks) : undefined;
  }

  async sha256(name: string): Promise<string | undefined> {
    const hash = createHash('sha256');
    let found = false;
    for await (const chunk of this.body(name, () => (found = true))) hash.update(chunk);
    return found ? hash.digest('hex') : undefined;
  }

  async list(): Promise<undefined> {
    return undefined;
  }
}
