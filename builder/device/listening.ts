import { readFile } from 'node:fs/promises';

/** Local TCP ports in LISTEN state, from /proc's tcp and tcp6 tables (hex fields; state 0A is LISTEN). */
export function listeningPorts(...tables: string[]): Set<number> {
  const ports = new Set<number>();
  for (const table of tables) {
    for (const line of table.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A') ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/**
 * The ports listening now in the Pi's own network: PID 1's tables. The export unit, which writes the health report
 * and may make a backup, has a network of its own (PrivateNetwork=), where /proc/net shows no relay listening.
 */
export async function listeningNow(): Promise<Set<number>> {
  const tables = await Promise.all(['/proc/1/net/tcp', '/proc/1/net/tcp6'].map((f) => readFile(f, 'utf8').catch(() => '')));
  return listeningPorts(...tables);
}
