import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DISABLE_BT, withBluetoothOff } from '../../builder/image/exposed-services.ts';

/** pi-gen's config.txt as the Raspberry Pi OS look-alike has it (test/fixtures/raspios-lookalike/README.md). */
const PI_GEN = readFileSync(join(import.meta.dirname, '../fixtures/raspios-lookalike/bootfs/config.txt'), 'utf8');

describe("config.txt: Bluetooth off on every model (Raspberry Pi OS's boot partition)", () => {
  it('appends dtoverlay=disable-bt under an [all] of its own, keeping every line of the base', () => {
    const updated = withBluetoothOff(PI_GEN);
    expect(updated.startsWith(PI_GEN.trimEnd())).toBe(true);
    expect(updated.slice(PI_GEN.trimEnd().length)).toBe(`\n\n# simplex-pi: Bluetooth off, a radio this relay never uses (hciuart and bluetooth are masked too).\n[all]\n${DISABLE_BT}\n`);
    expect(withBluetoothOff(updated)).toBe(updated);
  });

  it('a file that ends inside a model filter does not keep the overlay to that model', () => {
    const updated = withBluetoothOff('arm_64bit=1\n[cm5]\ndtoverlay=dwc2,dr_mode=host');
    expect(updated).toBe(`arm_64bit=1\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n# simplex-pi: Bluetooth off, a radio this relay never uses (hciuart and bluetooth are masked too).\n[all]\n${DISABLE_BT}\n`);
  });

  it('leaves a file alone that turns Bluetooth off for every model already, and not one that does so for one model or in a comment', () => {
    for (const text of [`${DISABLE_BT}\n[pi4]\nx=1\n`, `[pi4]\nx=1\n[all]\n  ${DISABLE_BT}\n`]) expect(withBluetoothOff(text)).toBe(text);
    for (const text of [`[pi4]\n${DISABLE_BT}\n`, `#${DISABLE_BT}\n`, `[none]\n${DISABLE_BT}\n`, 'dtoverlay=disable-bt-pi5\n']) expect(withBluetoothOff(text)).toMatch(/\[all\]\ndtoverlay=disable-bt\n$/);
    expect(withBluetoothOff('')).toBe(`# simplex-pi: Bluetooth off, a radio this relay never uses (hciuart and bluetooth are masked too).\n[all]\n${DISABLE_BT}\n`);
  });
});
