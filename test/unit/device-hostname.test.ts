import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { readme } from '../../builder/device/export-files.ts';
import { runningHostname } from '../../builder/device/host.ts';
import { stickFolder } from '../../builder/plan/layout.ts';
import { status } from '../../builder/device/status.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';

// Raspberry Pi Imager's customisation may give the Pi another host name than the recipe's (cloud-init sets it
// before first boot runs): the stick's folder and `simplex-pi status` must name the Pi as it is on the network.
const plan = resolvePlan(parseRecipe('name: family\nhostname: from-the-recipe\n', 'r.yaml'));

describe("the stick and status use the host name the Pi has, not the recipe's", () => {
  it('names the folder and the README after the running host name', () => {
    expect(stickFolder(runningHostname(plan, 'kitchen-pi'))).toBe('simplex-pi-kitchen-pi');
    expect(readme(plan, [], 'kitchen-pi')).toMatch(/^SimpleX relays of "family" \(host kitchen-pi\)\r\n/);
  });

  it("by default the kernel's host name (os.hostname()), made safe for FAT, the recipe's if the kernel has none", () => {
    expect(readme(plan, [], runningHostname(plan))).toContain(`(host ${runningHostname(plan, hostname())})`);
    expect(runningHostname(plan, 'odd name/with:chars')).toBe('odd-name-with-chars');
    expect(runningHostname(plan, '')).toBe('from-the-recipe');
  });

  it('status names the Pi by its running host name and says when the recipe named it otherwise', async () => {
    const first = (await status(plan)).split('\n')[0];
    expect(first).toBe(`simplex-pi "family" on ${runningHostname(plan, hostname())} (the recipe named it from-the-recipe)`);
  });
});
