import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { type Socks, socksConnect } from './relay-probe.ts';

/**
 * An HTTP(S) GET on the Pi, through its own Tor and nothing else: the connection is a SOCKS stream to the URL's host
 * name, which only Tor resolves (the firewall lets no other program out in any case). For `simplex-pi update --from
 * URL`: a bundle from GitHub's releases (which redirect to their download host) or from an onion mirror.
 */

export interface FetchOptions {
  socks: Socks;
  /** The most bytes accepted: a bundle is two binaries, never gigabytes. */
  maxBytes: number;
  timeoutMs: number;
  /** Redirects followed (GitHub's release downloads redirect once). */
  maxRedirects?: number;
}

export class FetchFailed extends Error {}

async function getOnce(url: URL, options: FetchOptions, deadline: number): Promise<{ status: number; location?: string; body: Buffer }> {
  const https = url.protocol === 'https:';
  const port = Number(url.port || (https ? 443 : 80));
  // Tor answers a SOCKS request within its own SocksTimeout (2 min), but this call keeps its caller's deadline.
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FetchFailed(`cannot reach ${url.host} through Tor: no connection within ${Math.round(options.timeoutMs / 1000)} s`)), Math.max(1, deadline - Date.now()));
  });
  const connecting = socksConnect(options.socks, url.hostname, port);
  const socket = await Promise.race([connecting, timeout])
    .catch((error: Error) => {
      connecting.then((s) => s.destroy(), () => undefined);
      throw error instanceof FetchFailed ? error : new FetchFailed(`cannot reach ${url.host} through Tor: ${error.message}`);
    })
    .finally(() => clearTimeout(timer));
  const stream = https ? tlsConnect({ socket, servername: url.hostname, ALPNProtocols: ['http/1.1'] }) : socket;
  const request = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy(new FetchFailed(`${url.href}: no complete answer within ${Math.round(options.timeoutMs / 1000)} s`));
    }, Math.max(1, deadline - Date.now()));
    // No agent: with createConnection and no agent, Node uses the stream given (an agent would dial its own).
    const req = request(url, { method: 'GET', createConnection: () => stream, headers: { 'user-agent': 'simplex-pi', accept: '*/*' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        clearTimeout(timer);
        resolve({ status, location: res.headers.location, body: Buffer.alloc(0) });
        return;
      }
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > options.maxBytes) req.destroy(new FetchFailed(`${url.href} is larger than ${options.maxBytes} bytes: not a relay update bundle`));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error instanceof FetchFailed ? error : new FetchFailed(`${url.href}: ${error.message}`));
    });
    req.end();
  });
}

/** The body of `url`, fetched through Tor; a status other than 200 is an error naming it. */
export async function fetchThroughTor(url: string, options: FetchOptions): Promise<Buffer> {
  const deadline = Date.now() + options.timeoutMs;
  let current = new URL(url);
  for (let redirects = 0; ; redirects++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new FetchFailed(`${current.href}: only http:// and https:// URLs are fetched`);
    const answer = await getOnce(current, options, deadline);
    if (answer.location !== undefined) {
      if (redirects >= (options.maxRedirects ?? 5)) throw new FetchFailed(`${url}: more than ${options.maxRedirects ?? 5} redirects`);
      current = new URL(answer.location, current);
      continue;
    }
    if (answer.status !== 200) throw new FetchFailed(`${current.href} answered HTTP ${answer.status}`);
    return answer.body;
  }
}
