import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePrometheus, readRelayMetrics, summariseMetrics } from '../../builder/device/relay-metrics.ts';
import { scratch } from '../helpers/env.ts';

/**
 * Samples as simplexmq v6.5.2 writes them (src/Simplex/Messaging/Server/Prometheus.hs prometheusMetrics,
 * src/Simplex/FileTransfer/Server/Prometheus.hs xftpPrometheusMetrics): the two header comments, section headings,
 * `# HELP`/`# TYPE`, each sample followed by the millisecond timestamp (mstr/tsEpoch) and a `# field` comment,
 * labelled samples, histogram buckets, and the info line without a timestamp whose label value holds a space.
 */
const TS = '1748779200123';
const SMP_SAMPLE = `# Recorded at: 2025-06-01T12:00:00.123456789Z
# Stats from: 2025-06-01T08:30:00.5Z

# Queues
# ------

# HELP simplex_smp_queues_created Created queues
# TYPE simplex_smp_queues_created counter
simplex_smp_queues_created 14 ${TS}
# qCreated

# HELP simplex_smp_queues_deleted Deleted queues
# TYPE simplex_smp_queues_deleted counter
simplex_smp_queues_deleted{type="all"} 2 ${TS}
# qDeleted
simplex_smp_queues_deleted{type="new"} 1 ${TS}
# qDeletedNew

# HELP simplex_smp_queues_total1 Total number of stored queues (first type of count).
# TYPE simplex_smp_queues_total1 gauge
simplex_smp_queues_total1 12 ${TS}
# qCount

# HELP simplex_smp_queues_total2 Total number of stored queues (second type of count).
# TYPE simplex_smp_queues_total2 gauge
simplex_smp_queues_total2 12 ${TS}
# qCount2

# HELP simplex_smp_queues_daily Daily active queues.
# TYPE simplex_smp_queues_daily gauge
simplex_smp_queues_daily 5 ${TS}
# dayMsgQueues

# Messages
# --------

# HELP simplex_smp_messages_sent Sent messages.
# TYPE simplex_smp_messages_sent counter
simplex_smp_messages_sent 350 ${TS}
# msgSent

# HELP simplex_smp_messages_received Received messages.
# TYPE simplex_smp_messages_received counter
simplex_smp_messages_received 310 ${TS}
# msgRecv

# HELP simplex_smp_messages_total Total number of messages stored.
# TYPE simplex_smp_messages_total gauge
simplex_smp_messages_total 40 ${TS}
# msgCount

# Info
# ----

# HELP simplex_smp_info Server information. RTS options have to be passed via SMP_RTS_OPTIONS env var
# TYPE simplex_smp_info gauge
simplex_smp_info{version="6.5.2.0",rts_options="set SMP_RTS_OPTIONS"} 1

# HELP simplex_smp_delivery_ack_confirmed_time Times to confirm message delivery, only confirmed deliveries
# TYPE simplex_smp_delivery_ack_confirmed_time histogram
simplex_smp_delivery_ack_confirmed_time_sum 1234 ${TS}
simplex_smp_delivery_ack_confirmed_time_bucket{le="60"} 300 ${TS}
simplex_smp_delivery_ack_confirmed_time_bucket{le="+Inf"} 310 ${TS}

# HELP simplex_smp_delivery_ack_pending_count Counts for pending delivery
# TYPE simplex_smp_delivery_ack_pending_count gauge
simplex_smp_delivery_ack_pending_count{period="0-60"} 3 ${TS}
simplex_smp_delivery_ack_pending_count{period="3600+"} 0 ${TS}
`;

const XFTP_SAMPLE = `# Recorded at: 2025-06-01T12:00:00Z
# Stats from: 2025-06-01T08:30:00Z

# Files
# -----

# HELP simplex_xftp_files_created Created files
# TYPE simplex_xftp_files_created counter
simplex_xftp_files_created 4 ${TS}
# filesCreated

# HELP simplex_xftp_files_uploaded Uploaded files
# TYPE simplex_xftp_files_uploaded counter
simplex_xftp_files_uploaded 2 ${TS}
# filesUploaded

# HELP simplex_xftp_files_count_total Total files count 
# TYPE simplex_xftp_files_count_total gauge
simplex_xftp_files_count_total 3 ${TS}
# filesCount

# HELP simplex_xftp_files_size Size of files 
# TYPE simplex_xftp_files_size gauge
simplex_xftp_files_size 1258291 ${TS}
# filesSize 

# HELP simplex_xftp_files_count_daily Daily files count
# TYPE simplex_xftp_files_count_daily gauge
simplex_xftp_files_count_daily 1 ${TS}
# filesDownloaded.dayCount

# Info
# ----

# HELP simplex_xftp_info Server information. RTS options have to be passed via XFTP_RTS_OPTIONS env var
# TYPE simplex_xftp_info gauge
simplex_xftp_info{version="6.5.2.0",rts_options="-N -A16m"} 1

`;

describe("a relay's Prometheus metrics file", () => {
  it('reads every sample of the real format, labels kept in the name, comments and timestamps left out', () => {
    const metrics = parsePrometheus(SMP_SAMPLE)!;
    expect(metrics.at).toBe('2025-06-01T12:00:00.123456789Z');
    expect(metrics.from).toBe('2025-06-01T08:30:00.5Z');
    expect(metrics.values).toEqual({
      simplex_smp_queues_created: 14,
      'simplex_smp_queues_deleted{type="all"}': 2,
      'simplex_smp_queues_deleted{type="new"}': 1,
      simplex_smp_queues_total1: 12,
      simplex_smp_queues_total2: 12,
      simplex_smp_queues_daily: 5,
      simplex_smp_messages_sent: 350,
      simplex_smp_messages_received: 310,
      simplex_smp_messages_total: 40,
      'simplex_smp_info{version="6.5.2.0",rts_options="set SMP_RTS_OPTIONS"}': 1,
      simplex_smp_delivery_ack_confirmed_time_sum: 1234,
      'simplex_smp_delivery_ack_confirmed_time_bucket{le="60"}': 300,
      'simplex_smp_delivery_ack_confirmed_time_bucket{le="+Inf"}': 310,
      'simplex_smp_delivery_ack_pending_count{period="0-60"}': 3,
      'simplex_smp_delivery_ack_pending_count{period="3600+"}': 0,
    });
    expect(parsePrometheus(XFTP_SAMPLE)!.values['simplex_xftp_info{version="6.5.2.0",rts_options="-N -A16m"}']).toBe(1);
  });

  it('sums SMP and XFTP up in a line and in numbers for JSON', () => {
    expect(summariseMetrics('smp', parsePrometheus(SMP_SAMPLE)!)).toEqual({
      line: '12 queues, 40 messages waiting, 350 sent and 310 received since 2025-06-01 08:30 UTC',
      numbers: { queues: 12, messagesWaiting: 40, messagesSent: 350, messagesReceived: 310 },
    });
    expect(summariseMetrics('xftp', parsePrometheus(XFTP_SAMPLE)!)).toEqual({
      line: '2 file chunks uploaded and net +3 (+1.2 MiB) stored since 2025-06-01 08:30 UTC',
      numbers: { chunksUploaded: 2, chunksStoredNet: 3, bytesStoredNet: 1258291 },
    });
  });

  it("counts queues from the store (total2), not the relay's counter since its start (total1), and leaves out a message count below zero", () => {
    // After a restart without saved stats: the store holds 12 queues and restored messages, the counters began at 0.
    const restarted = SMP_SAMPLE.replace(/^simplex_smp_queues_total1 12/m, 'simplex_smp_queues_total1 0').replace(/^simplex_smp_messages_total 40/m, 'simplex_smp_messages_total -3');
    const summary = summariseMetrics('smp', parsePrometheus(restarted)!);
    expect(summary.numbers).toEqual({ queues: 12, messagesSent: 350, messagesReceived: 310 });
    expect(summary.line).toBe('12 queues, 350 sent and 310 received since 2025-06-01 08:30 UTC');
    // 6.4.x and 6.5.x write both; total1 is only the fallback.
    expect(summariseMetrics('smp', parsePrometheus(SMP_SAMPLE.replace(/^simplex_smp_queues_total2 .*$/m, ''))!).numbers.queues).toBe(12);
    const xftpRestarted = summariseMetrics('xftp', parsePrometheus(XFTP_SAMPLE.replace(/^simplex_xftp_files_count_total 3/m, 'simplex_xftp_files_count_total -1').replace(/^simplex_xftp_files_size 1258291/m, 'simplex_xftp_files_size -1024'))!);
    expect(xftpRestarted.line).toBe('2 file chunks uploaded and net -1 (-1.0 KiB) stored since 2025-06-01 08:30 UTC');
  });

  it('survives a file caught part written (simplexmq writes it in place): the cut line is left out, nothing invented', () => {
    const cut = SMP_SAMPLE.indexOf(`simplex_smp_messages_sent 350 ${TS}`) + 'simplex_smp_messages_sent 35'.length;
    const torn = parsePrometheus(SMP_SAMPLE.slice(0, cut))!;
    expect(torn.values.simplex_smp_queues_total2).toBe(12);
    // Not 35: the line has no newline yet, so its value may be cut short.
    expect(torn.values).not.toHaveProperty('simplex_smp_messages_sent');
    expect(summariseMetrics('smp', torn)).toEqual({ line: '12 queues', numbers: { queues: 12 } });
    for (const bytes of [0, 10, 40, SMP_SAMPLE.indexOf('# HELP simplex_smp_queues_created')]) {
      expect(() => parsePrometheus(SMP_SAMPLE.slice(0, bytes))).not.toThrow();
    }
    expect(parsePrometheus('')).toBeUndefined();
    expect(parsePrometheus('# Recorded at: 2025-06-0')).toBeUndefined();
    expect(parsePrometheus('\u0000\u0000garbage\nmore { garbage "\n')).toBeUndefined();
    expect(summariseMetrics('xftp', parsePrometheus('# Recorded at: 2025-06-01T12:00:00Z\n')!).line).toBe('no counts in the metrics file');
  });

  it('reads the file the relay writes in its log directory, none while there is none, and never through a link or a pipe', async () => {
    const dir = await scratch('relay-metrics');
    expect(await readRelayMetrics('smp', dir)).toBeUndefined();
    expect(await readRelayMetrics('smp', join(dir, 'no-such-dir'))).toBeUndefined();
    await writeFile(join(dir, 'smp-server-metrics.txt'), SMP_SAMPLE);
    await writeFile(join(dir, 'xftp-server-metrics.txt'), XFTP_SAMPLE);
    expect((await readRelayMetrics('smp', dir))!.values.simplex_smp_messages_total).toBe(40);
    expect((await readRelayMetrics('xftp', dir))!.values.simplex_xftp_files_uploaded).toBe(2);

    // The relay user owns the directory: a link to another file (root's) or a named pipe is refused.
    const other = await scratch('relay-metrics-link');
    await writeFile(join(other, 'secret'), SMP_SAMPLE);
    await symlink(join(other, 'secret'), join(other, 'smp-server-metrics.txt'));
    await expect(readRelayMetrics('smp', other)).rejects.toThrow(/is a symbolic link; not reading it/);
    const piped = join(await scratch('relay-metrics-fifo'), 'state');
    await mkdir(piped);
    execFileSync('mkfifo', [join(piped, 'xftp-server-metrics.txt')]);
    await expect(readRelayMetrics('xftp', piped)).rejects.toThrow(/is not a regular file; not reading it/);
  });
});
