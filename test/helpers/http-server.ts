import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A file served by the test server; `cutAfter` closes the connection after that many bytes, `cuts` times. */
export interface Served {
  body?: Buffer | string;
  /** Served from this file instead of `body` (images too large to hold in memory). */
  file?: string;
  contentType?: string;
  cutAfter?: number;
  cuts?: number;
  ignoreRange?: boolean;
}

export interface RecordedRequest {
  path: string;
  range?: string;
}

/**
 * An HTTP server on 127.0.0.1 only, for downloads in tests: supports Range (206), and can cut a response short
 * to test resuming. Every request is recorded.
 */
export class TestServer {
  readonly requests: RecordedRequest[] = [];
  private server?: Server;
  readonly files = new Map<string, Served>();

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  serve(path: string, served: Served | Buffer | string): this {
    this.files.set(path, Buffer.isBuffer(served) || typeof served === 'string' ? { body: served } : served);
    return this;
  }

  requestsFor(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  private handle(req: IncomingMessage, res: import('node:http').ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push({ path, range: req.headers.range });
    const file = this.files.get(path);
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    if (file.file) {
      this.sendFile(req, res, file.file, file.contentType);
      return;
    }
    const body = Buffer.isBuffer(file.body) ? file.body : Buffer.from(file.body ?? '');
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !file.ignoreRange) {
      start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-type': file.contentType ?? 'application/octet-stream' });
    } else {
      res.writeHead(200, { 'content-length': body.length, 'content-type': file.contentType ?? 'application/octet-stream' });
    }
    const rest = body.subarray(start);
    if (file.cutAfter !== undefined && (file.cuts ?? 1) > 0) {
      file.cuts = (file.cuts ?? 1) - 1;
      res.write(rest.subarray(0, file.cutAfter), () => res.socket?.destroy());
      return;
    }
    res.end(rest);
  }

  private sendFile(req: IncomingMessage, res: import('node:http').ServerResponse, path: string, contentType = 'application/octet-stream'): void {
    const size = statSync(path).size;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= size && size > 0) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(range ? 206 : 200, {
      'content-length': size - start,
      'content-type': contentType,
      ...(range ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    createReadStream(path, { start }).pipe(res);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
