// An SSH ProxyCommand through Tor's SOCKS port when that port is a Unix socket (`SocksPort unix:PATH`, how the
// tests reach a Tor inside a network namespace): `node socks-pipe.mjs SOCKET HOST PORT`, then stdin/stdout are
// the stream to HOST:PORT.
import { connect } from 'node:net';

const [path, host, port] = process.argv.slice(2);
const socket = connect({ path });
let stage = 0;
let buffered = Buffer.alloc(0);
socket.on('connect', () => socket.write(Buffer.from([5, 1, 0])));
socket.on('error', (error) => {
  process.stderr.write(`socks-pipe: ${error.message}\n`);
  process.exit(1);
});
const onData = (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  if (stage === 0 && buffered.length >= 2) {
    buffered = buffered.subarray(2);
    const name = Buffer.from(host);
    socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([Number(port) >> 8, Number(port) & 0xff])]));
    stage = 1;
  }
  if (stage === 1 && buffered.length >= 10) {
    if (buffered[1] !== 0) {
      process.stderr.write(`socks-pipe: Tor refused ${host}:${port}: SOCKS reply 0x${buffered[1].toString(16)}\n`);
      process.exit(1);
    }
    // Tor answers with an IPv4 address (10 bytes in all) for a host name request.
    const rest = buffered.subarray(10);
    socket.off('data', onData);
    if (rest.length) process.stdout.write(rest);
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.on('close', () => process.exit(0));
    stage = 2;
  }
};
socket.on('data', onData);
