import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The Pi does not send its host name to the local network's DHCP server (security review L8), with either network
 * manager a base uses. Neither runs here, so these read the files as each documents its format.
 */
const repo = join(import.meta.dirname, '../..');

/** `[section]` -> key -> values, as systemd and NetworkManager (GKeyFile) read their files: `#` comments, `key=value`. */
function sections(text: string): Map<string, Map<string, string[]>> {
  const found = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = found.get(header[1]!) ?? new Map();
      found.set(header[1]!, current);
      continue;
    }
    const at = line.indexOf('=');
    if (!current || at < 0) throw new Error(`not a key=value line in a section: ${line}`);
    const key = line.slice(0, at).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(at + 1).trim()]);
  }
  return found;
}

describe('the host name stays off the local network', () => {
  it('systemd-networkd (the Debian base): SendHostname=no for DHCPv4 and for DHCPv6', () => {
    const network = sections(readFileSync(join(repo, 'overlays/debian-base/rootfs/etc/systemd/network/10-wired.network'), 'utf8'));
    expect(network.get('Network')?.get('DHCP')).toEqual(['yes']);
    expect(network.get('DHCPv4')?.get('SendHostname')).toEqual(['no']);
    expect(network.get('DHCPv6')?.get('SendHostname')).toEqual(['no']);
  });

  it('NetworkManager (Raspberry Pi OS): a default of 0 for every connection, which NetworkManager reads as a number', () => {
    const conf = sections(readFileSync(join(repo, 'overlays/rootfs/etc/NetworkManager/conf.d/simplex-pi.conf'), 'utf8'));
    expect([...conf.keys()]).toEqual(['connection']);
    // NetworkManager 1.52 nm-device.c: nm_config_data_get_connection_default_int64(…, 0, 1, fallback): "false"
    // does not parse as a number, and the fallback is to send the name.
    expect(Object.fromEntries(conf.get('connection')!)).toEqual({ 'ipv4.dhcp-send-hostname': ['0'], 'ipv6.dhcp-send-hostname': ['0'] });
  });
});
