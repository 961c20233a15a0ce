import { z } from 'zod';
import { UserError } from '../errors.ts';
import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';
import { parseJsonAs } from '../parse-json.ts';

export interface Partition {
  number: number;
  /** In sectors. */
  start: number;
  size: number;
  type: string;
}

export interface PartitionTable {
  label: 'dos' | 'gpt';
  sectorSize: number;
  partitions: Partition[];
}

const sfdiskJson = z.object({
  partitiontable: z.object({
    label: z.enum(['dos', 'gpt']),
    sectorsize: z.number().int().positive().optional(),
    partitions: z
      .array(z.object({ node: z.string(), start: z.number().int(), size: z.number().int(), type: z.string() }))
      .default([]),
  }),
});

/** Parse `sfdisk --json` output. Partition numbers come from the node names (img1, img2, …). */
export function parsePartitionTable(json: string, source = 'image'): PartitionTable {
  const table = parseJsonAs(sfdiskJson, json, source, {
    notJson: 'has no readable partition table (sfdisk printed no JSON)',
    invalid: 'has an unexpected partition table',
  }).partitiontable;
  return {
    label: table.label,
    sectorSize: table.sectorsize ?? 512,
    partitions: table.partitions.map((p) => ({
      number: Number(/(\d+)$/.exec(p.node)?.[1] ?? NaN),
      start: p.start,
      size: p.size,
      type: p.type,
    })),
  };
}

export async function readPartitionTable(image: string, log?: BuildLog): Promise<PartitionTable> {
  const { stdout } = await run('sfdisk', ['--json', image], { log, what: `read the partition table of ${image}` });
  return parsePartitionTable(stdout, image);
}

export interface RaspberryPiLayout {
  boot: Partition;
  root: Partition;
}

/**
 * Every Raspberry Pi image we accept has the FAT boot partition first (the firmware and Raspberry Pi Imager
 * require it) and the root filesystem as the second and last partition (so it can grow to the card's end).
 */
export function raspberryPiLayout(table: PartitionTable, source = 'image'): RaspberryPiLayout {
  const [boot, root, ...rest] = [...table.partitions].sort((a, b) => a.number - b.number);
  if (!boot || !root || boot.number !== 1 || root.number !== 2) {
    throw new UserError(`${source}: expected a FAT boot partition 1 and a root partition 2, found ${table.partitions.length} partition(s)`);
  }
  if (rest.length) throw new UserError(`${source}: expected exactly two partitions (boot, root); found ${table.partitions.length}`);
  if (root.start < boot.start + boot.size) throw new UserError(`${source}: the root partition must come after the boot partition`);
  if (table.sectorSize !== 512) throw new UserError(`${source}: sector size ${table.sectorSize} is not supported (expected 512)`);
  return { boot, root };
}
