import type { StageContext } from './context.ts';

/**
 * The shape of every stage in builder/stages/: what it needs of the earlier stages' outputs (and of what the build
 * knew before the first one), and what it hands on to the later ones.
 */
export type Stage<In extends object, Out extends object> = (ctx: StageContext, input: In) => Promise<Out>;

/** What a stage that only changes the image hands on. */
export type NoOutput = Record<never, never>;

export interface StageEntry {
  /** As the progress and the build log show it (`== stage NAME`). */
  name: string;
  run: Stage<object, object>;
  /** Why the stage has nothing to do (shown instead of its name), or false to run it. */
  skip?: (input: object) => string | false;
}

/**
 * The stages in order. Each `add` types the stage's input as what the build knew at the start and what the
 * stages before it returned, so a stage cannot ask for something only a later one makes.
 */
export class StageList<Start extends object, Done extends object = Start> {
  /** Types only: what the build has once every stage has run. */
  declare readonly done?: Done;

  private constructor(readonly entries: readonly StageEntry[]) {}

  static startingWith<Start extends object>(): StageList<Start> {
    return new StageList<Start>([]);
  }

  add<Out extends object>(name: string, run: Stage<Done, Out>, options: { skip?: (input: Done) => string | false } = {}): StageList<Start, Done & Out> {
    const entry: StageEntry = { name, run: run as unknown as StageEntry['run'], skip: options.skip as StageEntry['skip'] };
    return new StageList<Start, Done & Out>([...this.entries, entry]);
  }
}
