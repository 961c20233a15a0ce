import { execFile } from 'node:child_process';

/**
 * Run a system tool (blkid, udevadm, mtools, systemctl) with an argument array and a time limit: a failing stick
 * can stall I/O for minutes, and nothing the device program waits for may keep a unit running forever (security
 * review M1). On expiry the tool is killed and the call fails with a message that says which tool and how long.
 */
export interface ToolResult {
  stdout: string;
  stderr: string;
}

export class ToolFailed extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

export function runTool(file: string, args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ToolResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL', env: options.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ stdout, stderr });
      const timedOut = (error as { killed?: boolean }).killed === true;
      const why = timedOut ? `did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped` : `failed: ${stderr.trim() || error.message}`;
      reject(new ToolFailed(`${file} ${args.join(' ')} ${why}`, stdout, stderr, timedOut));
    });
  });
}
