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
