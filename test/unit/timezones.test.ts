import { copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTimezone } from '../../builder/image/zoneinfo.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe, recipeWarnings } from '../../builder/recipe/load.ts';
import { LEGACY_TIMEZONES } from '../../builder/recipe/timezones.ts';
import { scratch } from '../helpers/env.ts';

const recipe = (timezone: string) => parseRecipe(`name: a\ntimezone: "${timezone}"\n`, 'r.yaml');
const refusal = (timezone: string): string => {
  try {
    recipe(timezone);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${timezone} was accepted`);
};

describe('time zones in the recipe: IANA names by their form, old names mapped to current ones', () => {
  it.each(['Asia/Kolkata', 'Europe/Kyiv', 'Asia/Ho_Chi_Minh', 'America/Argentina/Buenos_Aires', 'America/Nuuk', 'Pacific/Kanton', 'Etc/GMT+5', 'Etc/UTC', 'UTC', 'Europe/Berlin'])(
    'accepts %s',
    (timezone) => {
      expect(resolvePlan(recipe(timezone)).timezone).toBe(timezone);
    },
  );

  it.each(['../../../etc/shadow', 'Europe Berlin', '/Europe/Berlin', 'Europe/', 'Europe/../Berlin', 'localtime', 'zone1970.tab', '5/Five'])('refuses %s', (timezone) => {
    expect(refusal(timezone)).toContain('recipe.timezone: must be a time zone name like Europe/Berlin');
  });

  it.each([
    ['Asia/Calcutta', 'Asia/Kolkata'],
    ['Europe/Kiev', 'Europe/Kyiv'],
    ['Asia/Saigon', 'Asia/Ho_Chi_Minh'],
    ['Asia/Katmandu', 'Asia/Kathmandu'],
    ['Asia/Rangoon', 'Asia/Yangon'],
    ['America/Godthab', 'America/Nuuk'],
    ['Pacific/Enderbury', 'Pacific/Kanton'],
    ['America/Buenos_Aires', 'America/Argentina/Buenos_Aires'],
    ['US/Eastern', 'America/New_York'],
  ])('maps the old name %s to %s, with a warning', (old, current) => {
    const parsed = recipe(old);
    expect(resolvePlan(parsed).timezone).toBe(current);
    expect(recipeWarnings(parsed)).toEqual([expect.stringContaining(`recipe.timezone: "${old}" is an old name of ${current}`)]);
  });

  it('warns about nothing for a current name', () => {
    expect(recipeWarnings(recipe('Asia/Kolkata'))).toEqual([]);
  });

  it('maps only to names that are not themselves old names', () => {
    for (const current of Object.values(LEGACY_TIMEZONES)) expect(LEGACY_TIMEZONES[current], current).toBeUndefined();
  });
});

/** A root with a tzdata laid out as Debian trixie's: real zone files (from this host), UTC a relative link. */
async function imageWithTzdata(): Promise<string> {
  const root = await scratch('tz');
  const zoneinfo = join(root, 'usr/share/zoneinfo');
  for (const zone of ['Europe/Berlin', 'Asia/Kolkata', 'Etc/UTC']) {
    await mkdir(dirname(join(zoneinfo, zone)), { recursive: true });
    await copyFile(join('/usr/share/zoneinfo', zone), join(zoneinfo, zone));
  }
  await symlink('Etc/UTC', join(zoneinfo, 'UTC'));
  // An absolute link resolves inside the image, not on the build host.
  await symlink('/usr/share/zoneinfo/Asia/Kolkata', join(zoneinfo, 'Asia/Calcutta'));
  await mkdir(join(zoneinfo, 'Europe'), { recursive: true });
  await symlink('Kyiv', join(zoneinfo, 'Europe/Kiev'));
  await writeFile(join(zoneinfo, 'leapseconds'), '# not a zone\n');
  return root;
}

describe("the build checks the time zone against the image's own tzdata", () => {
  it('accepts zone files and links to them, resolved inside the image', async () => {
    const root = await imageWithTzdata();
    for (const zone of ['Europe/Berlin', 'UTC', 'Etc/UTC', 'Asia/Calcutta']) await expect(checkTimezone(root, zone)).resolves.toBeUndefined();
  });

  it('refuses a zone the image lacks, a dangling link and a file that is no zone, naming the recipe field', async () => {
    const root = await imageWithTzdata();
    await expect(checkTimezone(root, 'Mars/Olympus')).rejects.toThrow(
      /^recipe\.timezone: "Mars\/Olympus" is not a time zone of this image's tzdata: \/usr\/share\/zoneinfo\/Mars\/Olympus does not exist in the image, so the Pi would run on UTC/,
    );
    await expect(checkTimezone(root, 'Europe/Kiev')).rejects.toThrow(/\/usr\/share\/zoneinfo\/Europe\/Kiev is a dangling link \(to \/usr\/share\/zoneinfo\/Europe\/Kyiv/);
    await expect(checkTimezone(root, 'leapseconds')).rejects.toThrow(/\/usr\/share\/zoneinfo\/leapseconds is not a time zone file/);
  });
});
