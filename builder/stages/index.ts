import { StageList } from '../pipeline/stage-list.ts';
import type { ToolVersion } from '../pipeline/tool-version.ts';
import { baseStage } from './base.ts';
import { binariesStage } from './binaries.ts';
import { configureStage } from './configure.ts';
import { emitStage } from './emit.ts';
import { installDeviceStage } from './install-device.ts';
import { mountStage } from './mount.ts';
import { packagesStage } from './packages.ts';
import { prepareStage } from './prepare.ts';
import { sealStage } from './seal.ts';

/** What the build knows before the first stage; emit records it in the manifest. */
export interface BuildFacts {
  recipe: { path: string; sha256: string };
  tool: ToolVersion;
  /** Seconds each stage took, filled in as each ends: emit records the stages before it. */
  stageSeconds: Record<string, number>;
}

/**
 * The build's stages in order (README "Building"). Each takes the stage context and what the stages before it
 * returned (base → base, prepare → work, mount → mounted, binaries → binaries, configure → initFormat,
 * seal → seal, emit → outputs).
 */
export const STAGES = StageList.startingWith<BuildFacts>()
  .add('base', baseStage)
  .add('prepare', prepareStage)
  .add('packages', packagesStage, { skip: ({ work }) => (work.fromLayer ? `packages (cached layer ${work.packagesKey})` : false) })
  .add('mount', mountStage)
  .add('binaries', binariesStage)
  .add('configure', configureStage)
  .add('install-device', installDeviceStage)
  .add('seal', sealStage)
  .add('emit', emitStage);

/** Everything the stages returned, once all have run. */
export type StageOutputs = NonNullable<typeof STAGES.done>;
