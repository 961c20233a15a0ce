/** One server first boot made, as servers.json (root only, and on the stick) lists it. */
export interface ServerRecord {
  name: string;
  kind: 'smp' | 'xftp' | 'ssh';
  onion: string;
  address: string;
}

/** The server list: `name<TAB>address` lines, as addresses.txt holds them (with CRLF on the FAT stick). */
export function addressLines(records: readonly ServerRecord[], eol: '\n' | '\r\n' = '\n'): string {
  return records.map((r) => `${r.name}\t${r.address}${eol}`).join('');
}
