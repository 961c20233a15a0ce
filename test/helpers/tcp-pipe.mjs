// One TCP connection on stdin/stdout: what qemu's user-mode network runs for each connection the guest makes to a
// forwarded address (guestfwd=…-cmd:), inside the test's network namespace (test/helpers/vm.ts, torNetwork).
import { connect } from 'node:net';

const [host, port] = process.argv.slice(2);
const socket = connect({ host, port: Number(port) });
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => process.exit(1));
socket.on('close', () => process.exit(0));
process.stdin.on('end', () => socket.end());
