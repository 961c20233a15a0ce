import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { RELAY_KINDS, type RelayKind } from '../plan/layout.ts';
import { formatBytes } from '../format-bytes.ts';

/**
 * A relay's own counts (queues, messages waiting, files stored), from the Prometheus text file simplexmq writes
 * every `[STORE_LOG] prometheus_interval` seconds (plan/plan.ts sets it) into its log directory: SMP
 * `Server/Main.hs` prometheusMetricsFile, `Server.hs` savePrometheusMetrics, format in `Server/Prometheus.hs`;
 * XFTP `FileTransfer/Server/Main.hs`, `FileTransfer/Server/Prometheus.hs` (simplexmq v6.4.5, v6.5.2, master).
 * The first file appears one interval after the start. Runs on the device.
 */

export interface RelayMetrics {
  /** `# Recorded at:` (ISO 8601, UTC): when the relay wrote the file. */
  at: string;
  /** `# Stats from:`: where the counters start (the relay's start, unless it restored saved stats). */
  from?: string;
  /** Every sample by name, labels kept as written (`simplex_smp_queues_deleted{type="all"}`). */
  values: Record<string, number>;
}

/**
 * The real file is a few tens of KB; more than this is not the relay's file, and is not read whole into
 * status, which may run as root.
 */
const MAX_BYTES = 1024 * 1024;

/**
 * The relay's metrics file, parsed; undefined while there is none (metrics off, or the first interval not over) or
 * while it is empty. The relay user owns the directory and could put a link or a named pipe in the file's place:
 * one is refused (an error, never followed or waited on), so nothing but this file is ever read from there.
 */
export async function readRelayMetrics(kind: RelayKind, logPath: string): Promise<RelayMetrics | undefined> {
  const path = join(logPath, RELAY_KINDS[kind].metricsFile);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new Error(`${path} is a symbolic link; not reading it`);
    throw error;
  }
  try {
    if (!(await handle.stat()).isFile()) throw new Error(`${path} is not a regular file; not reading it`);
    const buffer = Buffer.alloc(MAX_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, MAX_BYTES, 0);
    return parsePrometheus(buffer.subarray(0, bytesRead).toString('utf8'));
  } finally {
    await handle.close();
  }
}

// name, then labels (quoted values may hold spaces, braces and escaped quotes: the info line's rts_options does),
// then the value and simplexmq's millisecond timestamp (absent on some lines).
const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?)\s+(\S+)(?:\s+-?\d+)?\s*$/;

/**
 * Prometheus text as simplexmq writes it: `# Recorded at:`/`# Stats from:` first, then samples among comment lines
 * (`# HELP`, `# TYPE`, and a `# fieldName` after each sample). simplexmq writes the file in place (T.writeFile:
 * truncate, then write), so a reader can catch it part written: a last line without its newline may be cut inside
 * its value and is left out, and samples not yet written are simply absent. No header means nothing usable yet.
 */
export function parsePrometheus(text: string): RelayMetrics | undefined {
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop();
  const header = (label: string) => lines.find((l) => l.startsWith(`# ${label}: `))?.slice(label.length + 4).trim();
  const at = header('Recorded at');
  if (!at) return undefined;
  const values: Record<string, number> = {};
  for (const line of lines) {
    const sample = SAMPLE.exec(line.trim());
    if (!sample) continue;
    const value = Number(sample[2]);
    // Counts are integers; NaN and ±Inf have no place in them, nor in the JSON report.
    if (Number.isFinite(value) && !(sample[1]! in values)) values[sample[1]!] = value;
  }
  const from = header('Stats from');
  return from ? { at, from, values } : { at, values };
}

export interface MetricsSummary {
  /** For people: `12 queues, 40 messages waiting, 350 sent and 310 received since 2025-06-01 12:00 UTC`. */
  line: string;
  /** The same numbers for the JSON report; one the file lacks is left out, never given as 0. */
  numbers: Record<string, number>;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** `2025-06-01T12:00:00.123456Z` as `2025-06-01 12:00 UTC`. */
function sinceWhen(from: string | undefined): string {
  const match = from && /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(from);
  return match ? `since ${match[1]} ${match[2]} UTC` : 'since the relay started';
}

function present(numbers: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(Object.entries(numbers).filter((entry): entry is [string, number] => entry[1] !== undefined));
}

/**
 * SMP. Queues are the store's own count (simplex_smp_queues_total2, getEntityCounts). simplex_smp_queues_total1 and
 * simplex_smp_messages_total are counters the relay keeps from "Stats from" on, set to the store's counts only
 * when it restores saved stats (`log_stats = on` and a clean stop before); the relay also resets the message count
 * to the store's at every expiry check (every 2 hours, Env/STM.hs defaultMessageExpiration). So total1 is only the
 * fallback, and a message count below zero (messages restored at the start, then delivered, before the first
 * check) says nothing and is left out.
 */
function smpSummary(metrics: RelayMetrics): MetricsSummary {
  const v = metrics.values;
  const waiting = v.simplex_smp_messages_total;
  const numbers = present({
    queues: v.simplex_smp_queues_total2 ?? v.simplex_smp_queues_total1,
    messagesWaiting: waiting !== undefined && waiting >= 0 ? waiting : undefined,
    messagesSent: v.simplex_smp_messages_sent,
    messagesReceived: v.simplex_smp_messages_received,
  });
  const parts: string[] = [];
  if (numbers.queues !== undefined) parts.push(plural(numbers.queues, 'queue'));
  if (numbers.messagesWaiting !== undefined) parts.push(`${plural(numbers.messagesWaiting, 'message')} waiting`);
  const flow = [
    numbers.messagesSent === undefined ? undefined : `${numbers.messagesSent} sent`,
    numbers.messagesReceived === undefined ? undefined : `${numbers.messagesReceived} received`,
  ].filter(Boolean);
  if (flow.length) parts.push(`${flow.join(' and ')} ${sinceWhen(metrics.from)}`);
  return { line: parts.join(', ') || 'no counts in the metrics file', numbers };
}

const signed = (n: number, text: string) => `${n < 0 ? '-' : '+'}${text}`;

/**
 * XFTP. What it calls a file is one chunk of a file a person sends (clients split files across relays), so the line
 * says chunks. simplex_xftp_files_count_total and simplex_xftp_files_size are not the store's counts but counters
 * from "Stats from" on (uploads add, expiry and deletion subtract), set to the store's only when saved stats are
 * restored: after a restart without them they start again at 0 and can go below it. So they are given as what
 * they are, a net change since then (on a relay that never restarted, what it stores). The bytes on the card are
 * the quota check's to tell (device/storage.ts).
 */
function xftpSummary(metrics: RelayMetrics): MetricsSummary {
  const v = metrics.values;
  const numbers = present({
    chunksUploaded: v.simplex_xftp_files_uploaded,
    chunksStoredNet: v.simplex_xftp_files_count_total,
    bytesStoredNet: v.simplex_xftp_files_size,
  });
  const parts: string[] = [];
  if (numbers.chunksUploaded !== undefined) parts.push(`${plural(numbers.chunksUploaded, 'file chunk')} uploaded`);
  if (numbers.chunksStoredNet !== undefined) {
    const bytes = numbers.bytesStoredNet === undefined ? '' : ` (${signed(numbers.bytesStoredNet, formatBytes(Math.abs(numbers.bytesStoredNet)))})`;
    parts.push(`net ${signed(numbers.chunksStoredNet, String(Math.abs(numbers.chunksStoredNet)))}${bytes} stored`);
  }
  return { line: parts.length ? `${parts.join(' and ')} ${sinceWhen(metrics.from)}` : 'no counts in the metrics file', numbers };
}

/** A short line for status and the health report, and its numbers for the JSON report. */
export function summariseMetrics(kind: RelayKind, metrics: RelayMetrics): MetricsSummary {
  return kind === 'smp' ? smpSummary(metrics) : xftpSummary(metrics);
}
