import { X509Certificate, createHash } from 'node:crypto';
import { type Socket, createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * Reaching a service the way its users do, not "is the port open": a relay must complete its TLS handshake
 * with the ALPN its apps ask for and present a certificate chain whose identity certificate hashes to the
 * fingerprint in its address, and SSH must send its banner. Through Tor's SOCKS port for an onion address
 * (the watchdog, device/watchdog.ts, and the tests' private Tor network), or directly for the local port.
 *
 * What SimpleX clients check (simplexmq Transport/Client.hs validateCertificateChain, Transport/Shared.hs
 * chainIdCaCerts): the server sends `[leaf, identity]` (server.crt then ca.crt, as init made them); the address's
 * fingerprint is base64url(sha256(DER of the identity certificate)); the chain must validate against that
 * certificate, with validity dates checked and the host name not. ALPN: `smp/1` for SMP, `xftp/1` for XFTP.
 */

export type ProbeKind = 'smp' | 'xftp' | 'ssh';

export interface ProbeTarget {
  kind: ProbeKind;
  host: string;
  port: number;
  /** The address's fingerprint (base64url, padding optional); required for smp and xftp. */
  fingerprint?: string;
}

/** Tor's SOCKS port: TCP, or a Unix socket (`SocksPort unix:PATH`, how the tests reach a Tor in a namespace). */
export type Socks = { host: string; port: number } | { path: string };

export type ProbeStage = 'connect' | 'socks' | 'tls' | 'identity' | 'banner' | 'timeout';

export type ProbeResult = { ok: true; ms: number; detail: string } | { ok: false; ms: number; stage: ProbeStage; error: string };

export const ALPN: Record<Exclude<ProbeKind, 'ssh'>, string> = { smp: 'smp/1', xftp: 'xftp/1' };

class ProbeError extends Error {
  constructor(readonly stage: ProbeStage, message: string) {
    super(message);
  }
}

/**
 * Tor's SOCKS5 replies (RFC 1928, and tor's ExtendedErrors for onion services, proposal 304): what went wrong in
 * words a person can act on.
 */
const SOCKS_REPLIES: Record<number, string> = {
  0x01: 'general failure',
  0x02: 'not allowed by the SOCKS policy',
  0x03: 'network unreachable',
  0x04: 'host unreachable',
  0x05: 'connection refused by the service (nothing listens behind the onion port)',
  0x06: 'timed out (TTL expired)',
  0x07: 'command not supported',
  0x08: 'address type not supported',
  0xf0: 'onion service descriptor not found: the service is not published (or not yet)',
  0xf1: 'onion service descriptor is invalid',
  0xf2: 'onion service introduction failed',
  0xf3: 'onion service rendezvous failed',
  0xf4: 'onion service needs client authorization, and this client has no key for it',
  0xf5: 'onion service refused this client\'s authorization key',
  0xf6: 'onion address is invalid',
  0xf7: 'onion service introduction timed out',
};

/**
 * Reads exactly `n` bytes at a time (or fails when the connection ends first); `detach` gives back what came after
 * the last read, which a server that speaks first (SSH) may have sent in the same packet as Tor's reply.
 */
function reader(socket: Socket): { read: (n: number) => Promise<Buffer>; detach: () => Buffer } {
  let buffered = Buffer.alloc(0);
  let want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  let ended: Error | undefined;
  const pump = () => {
    if (!want) return;
    if (buffered.length >= want.n) {
      const out = buffered.subarray(0, want.n);
      buffered = buffered.subarray(want.n);
      const w = want;
      want = undefined;
      w.resolve(out);
    } else if (ended) {
      const w = want;
      want = undefined;
      w.reject(ended);
    }
  };
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    pump();
  };
  const end = (error: Error) => {
    ended ??= error;
    pump();
  };
  const onEnd = () => end(new ProbeError('socks', 'the SOCKS proxy closed the connection'));
  const onError = (error: Error) => end(new ProbeError('socks', error.message));
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  return {
    read: (n) =>
      new Promise((resolve, reject) => {
        want = { n, resolve, reject };
        pump();
      }),
    detach: () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      return buffered;
    },
  };
}

function connectTcp(options: { host: string; port: number } | { path: string }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(options as { host: string; port: number });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => reject(new ProbeError('connect', error.message)));
  });
}

/** A TCP stream to `host:port` through Tor's SOCKS5 port (no authentication; the host name is sent to Tor, never resolved here). */
export async function socksConnect(socks: Socks, host: string, port: number): Promise<Socket> {
  const socket = await connectTcp(socks).catch((error: ProbeError) => {
    throw new ProbeError('connect', `cannot reach Tor's SOCKS port ${'path' in socks ? socks.path : `${socks.host}:${socks.port}`}: ${error.message}`);
  });
  try {
    const { read, detach } = reader(socket);
    socket.write(Buffer.from([5, 1, 0]));
    const method = await read(2);
    if (method[0] !== 5 || method[1] !== 0) throw new ProbeError('socks', `the SOCKS proxy refused the greeting (${method.toString('hex')})`);
    const name = Buffer.from(host, 'ascii');
    socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]));
    const head = await read(4);
    if (head[1] !== 0) throw new ProbeError('socks', `Tor could not connect to ${host}:${port}: ${SOCKS_REPLIES[head[1]!] ?? `SOCKS reply ${head[1]}`}`);
    const addressBytes = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await read(1))[0]!;
    await read(addressBytes + 2);
    // The stream's first bytes, if they came with the reply, are read again by whoever reads the socket next.
    const early = detach();
    if (early.length) socket.unshift(early);
    return socket;
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** The fingerprint as SimpleX addresses carry it: base64url of the sha256 of the certificate's DER, padded. */
export function certificateFingerprint(der: Buffer): string {
  const hash = createHash('sha256').update(der).digest('base64url');
  return hash.padEnd(Math.ceil(hash.length / 4) * 4, '=');
}

const unpadded = (s: string) => s.replace(/=+$/, '');

/** The certificates the server sent, leaf first (Node links them through issuerCertificate). */
function peerChain(socket: ReturnType<typeof tlsConnect>): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let cert = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined; cert?.raw; ) {
    const key = cert.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate as typeof cert;
  }
  return chain;
}

/** The relay's TLS handshake on `socket`, checked as a SimpleX client checks it. Resolves with what it saw. */
function relayHandshake(socket: Socket, target: ProbeTarget & { kind: 'smp' | 'xftp' }): Promise<string> {
  const alpn = ALPN[target.kind];
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, ALPNProtocols: [alpn], rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    tls.once('error', (error) => reject(new ProbeError('tls', `TLS handshake failed: ${error.message}`)));
    tls.once('secureConnect', () => {
      try {
        if (tls.alpnProtocol !== alpn) throw new ProbeError('tls', `the server did not agree to ALPN ${alpn} (it chose ${tls.alpnProtocol || 'none'})`);
        const chain = peerChain(tls);
        // [leaf, identity] today; simplexmq also accepts an operator and a network certificate after the identity.
        if (chain.length < 2 || chain.length > 4) throw new ProbeError('identity', `the server sent ${chain.length} certificate(s); a SimpleX relay sends its server certificate and its identity certificate`);
        const [leaf, identity] = [chain[0]!, chain[1]!];
        const ca = chain.at(-1)!;
        const fingerprint = certificateFingerprint(identity.raw);
        if (unpadded(fingerprint) !== unpadded(target.fingerprint ?? '')) {
          throw new ProbeError('identity', `the relay's identity is ${fingerprint}, not ${target.fingerprint} as in its address: this is not the relay the address names`);
        }
        if (!leaf.checkIssued(identity) || !leaf.verify(identity.publicKey)) throw new ProbeError('identity', 'the server certificate is not signed by the identity certificate');
        if (ca !== identity && !(identity.checkIssued(ca) && identity.verify(ca.publicKey))) throw new ProbeError('identity', 'the identity certificate is not signed by the chain\'s CA');
        const now = Date.now();
        for (const cert of chain) {
          if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) {
            throw new ProbeError('identity', `a certificate is valid only from ${cert.validFrom} to ${cert.validTo} (is this clock right?)`);
          }
        }
        resolve(`TLS ${tls.getProtocol()}, ALPN ${alpn}, identity ${fingerprint}`);
      } catch (error) {
        reject(error);
      } finally {
        tls.destroy();
      }
    });
  });
}

/** SSH's identification line (RFC 4253 §4.2), the first thing an SSH server sends. */
function sshBanner(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const line = /^(SSH-2\.0-[^\r\n]*)\r?\n/m.exec(data);
      if (line) {
        socket.destroy();
        resolve(line[1]!);
      } else if (data.length > 8192) {
        socket.destroy();
        reject(new ProbeError('banner', 'no SSH identification line in the first 8 KiB'));
      }
    });
    socket.on('end', () => reject(new ProbeError('banner', 'the connection closed before SSH sent its identification line')));
    socket.on('error', (error) => reject(new ProbeError('banner', error.message)));
  });
}

/**
 * Reach `target` (through `socks`, or directly when it is null) and check it answers as its users expect, within
 * `timeoutMs`. Never throws: the result says at which stage it failed and why.
 */
export async function probeService(target: ProbeTarget, socks: Socks | null, timeoutMs = 60_000): Promise<ProbeResult> {
  const started = Date.now();
  let socket: Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeError('timeout', `no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  });
  try {
    const detail = await Promise.race([
      (async () => {
        socket = socks ? await socksConnect(socks, target.host, target.port) : await connectTcp({ host: target.host, port: target.port });
        if (target.kind === 'ssh') return await sshBanner(socket);
        if (!target.fingerprint) throw new ProbeError('identity', `no fingerprint to check ${target.kind} against`);
        return await relayHandshake(socket, { ...target, kind: target.kind });
      })(),
      timeout,
    ]);
    return { ok: true, ms: Date.now() - started, detail };
  } catch (error) {
    const stage = error instanceof ProbeError ? error.stage : 'connect';
    return { ok: false, ms: Date.now() - started, stage, error: (error as Error).message };
  } finally {
    clearTimeout(timer);
    socket?.destroy();
  }
}
