import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { UserError } from './errors.ts';

/** A regular file read out of a tar archive in memory. */
export interface TarFile {
  name: string;
  mode: number;
  content: Buffer;
}

/**
 * Every regular file of a tar in memory, for archives simplex-pi itself writes (backups, relay update bundles):
 * links, devices and anything else are refused, and so is a name that comes twice (checks would read the first
 * copy, a writer would keep the last). `what` completes "not …": `a simplex-pi backup`.
 */
export async function untarFiles(bytes: Uint8Array, source: string, what: string): Promise<TarFile[]> {
  const files: TarFile[] = [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => {
        if (header.type !== 'file') return reject(new UserError(`${source}: holds ${header.name}, a ${header.type} and not a file: not ${what}`));
        if (files.some((m) => m.name === header.name)) return reject(new UserError(`${source}: holds ${header.name} twice, and ${what} holds each name once`));
        files.push({ name: header.name, mode: (header.mode ?? 0o600) & 0o777, content: Buffer.concat(chunks) });
        next();
      });
      stream.on('error', reject);
    });
    reader.on('finish', resolve);
    reader.on('error', (error: Error) => reject(new UserError(`${source}: not a tar archive (${error.message}): not ${what}, or a damaged one`)));
  });
  Readable.from([Buffer.from(bytes)]).pipe(reader);
  await done;
  return files;
}
