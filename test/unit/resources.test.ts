import { describe, expect, it } from 'vitest';
import { Resources } from '../../builder/resources.ts';

describe('Resources', () => {
  it('releases newest first, keeps going past a failure, and reports it', async () => {
    const order: string[] = [];
    const resources = new Resources();
    resources.hold('loop', async () => void order.push('loop'));
    resources.hold('mount', async () => {
      order.push('mount');
      throw new Error('busy');
    });
    resources.hold('proc', async () => void order.push('proc'));
    expect(await resources.releaseAll()).toEqual(['mount: busy']);
    expect(order).toEqual(['proc', 'mount', 'loop']);
    expect(resources.count).toBe(0);
  });

  it('serialises concurrent releases (a Ctrl-C during a failing stage) so each runs once, in order', async () => {
    const order: string[] = [];
    const resources = new Resources();
    for (const name of ['a', 'b', 'c', 'd']) {
      resources.hold(name, async () => {
        order.push(`start ${name}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
        order.push(`end ${name}`);
      });
    }
    await Promise.all([resources.releaseAll(), resources.releaseAll()]);
    expect(order).toEqual(['start d', 'end d', 'start c', 'end c', 'start b', 'end b', 'start a', 'end a']);
  });

  it('releases only what came after `keep`, and an early release removes its entry', async () => {
    const order: string[] = [];
    const resources = new Resources();
    resources.hold('partitions', async () => void order.push('partitions'));
    const releaseChroot = resources.hold('chroot', async () => void order.push('chroot'));
    resources.hold('resolv', async () => void order.push('resolv'));
    await releaseChroot();
    await resources.releaseAll(1);
    expect(order).toEqual(['chroot', 'resolv']);
    expect(resources.count).toBe(1);
  });
});
