import { formatBytes } from './format-bytes.ts';

/** How far a long transfer (a download, a decompression) has got. */
export interface Progress {
  bytes: number;
  total?: number;
  bytesPerSecond: number;
}

export type ProgressReporter = (progress: Progress) => void;

export function formatProgress({ bytes, total, bytesPerSecond }: Progress): string {
  const size = total ? `${formatBytes(bytes)} / ${formatBytes(total)}` : formatBytes(bytes);
  return `${size} at ${formatBytes(bytesPerSecond)}/s`;
}
