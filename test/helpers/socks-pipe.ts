// An SSH ProxyCommand through Tor's SOCKS port when that port is a Unix socket (`SocksPort unix:PATH`, how the
// tests reach a Tor inside a network namespace): `node --import tsx socks-pipe.ts SOCKET HOST PORT`; stdin and
// stdout are then the stream to HOST:PORT. The SOCKS exchange is the device's own (builder/device/relay-probe.ts).
import { socksConnect } from '../../builder/device/relay-probe.ts';

const [path, host, port] = process.argv.slice(2);
try {
  const socket = await socksConnect({ path: path! }, host!, Number(port));
  // When the stream closes, stdin is let go, so the process ends once stdout has taken every byte.
  socket.on('close', () => process.stdin.destroy());
  socket.on('error', () => (process.exitCode = 1));
  process.stdin.pipe(socket);
  socket.pipe(process.stdout);
} catch (error) {
  process.stderr.write(`socks-pipe: ${(error as Error).message}\n`);
  process.exit(1);
}
