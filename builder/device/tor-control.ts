import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { TOR_CONTROL_COOKIE, TOR_CONTROL_SOCKET } from '../plan/layout.ts';

/**
 * Asking the Pi's Tor over its control socket (cookie authentication, as Debian sets it up): `status` and the
 * health report show how far it has bootstrapped, and the watchdog checks onions only once it is connected.
 */

/** `PROGRESS=… TAG=… SUMMARY="…"` out of Tor's `status/bootstrap-phase`. */
export function parseBootstrap(reply: string): { progress: number; summary: string } | undefined {
  const match = /status\/bootstrap-phase=\S+ BOOTSTRAP PROGRESS=(\d+) TAG=\S+ SUMMARY="([^"]*)"/.exec(reply);
  return match ? { progress: Number(match[1]), summary: match[2]! } : undefined;
}

/** Tor's bootstrap phase; throws when Tor cannot be asked (EACCES for a user outside Tor's group), or answers otherwise. */
export async function torBootstrapPhase(socket = TOR_CONTROL_SOCKET, cookieFile = TOR_CONTROL_COOKIE): Promise<{ progress: number; summary: string }> {
  const cookie = (await readFile(cookieFile)).toString('hex');
  const reply = await new Promise<string>((resolve, reject) => {
    const connection = createConnection(socket);
    let data = '';
    connection.setTimeout(5000, () => connection.destroy(new Error('no answer within 5 s')));
    connection.on('data', (chunk) => (data += chunk.toString()));
    connection.on('error', reject);
    connection.on('close', () => resolve(data));
    connection.write(`AUTHENTICATE ${cookie}\r\nGETINFO status/bootstrap-phase\r\nQUIT\r\n`);
  });
  const phase = parseBootstrap(reply);
  if (!phase) throw new Error(`Tor answered: ${reply.split('\r\n')[0]}`);
  return phase;
}
