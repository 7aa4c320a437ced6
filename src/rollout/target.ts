/**
 * The devices a rollout targets: one product, narrowed to groups and/or listed device ids (their
 * union), or the whole product when neither is given. Pure rules over plain data: whether a
 * device is targeted, and whether two targets can share a device.
 *
 * @module
 */

/** What a rollout targets. Empty `groups` and `devices` mean every device of `product`. */
export interface RolloutTarget {
  /** Product of the image; only devices of this product are targeted. */
  product: string;
  /** Groups whose devices are targeted (a device's groups come from the inventory). */
  groups: readonly string[];
  /** Devices targeted by id. */
  devices: readonly string[];
}

/** What the rules need to know of a device. */
export interface TargetedDevice {
  /** Device id. */
  id: string;
  /** Product the device runs. */
  product: string;
  /** Groups the device is labelled with. */
  groups: readonly string[];
}

/** True when the target names neither groups nor devices: it is the whole product. */
export function isWholeProduct(target: RolloutTarget): boolean {
  return target.groups.length === 0 && target.devices.length === 0;
}

/** True when `target` covers `device`: same product, and whole product or a group or id match. */
export function targetCovers(target: RolloutTarget, device: TargetedDevice): boolean {
  if (device.product !== target.product) return false;
  if (isWholeProduct(target)) return true;
  if (target.devices.includes(device.id)) return true;
  return device.groups.some((g) => target.groups.includes(g));
}

/**
 * Why two targets can share a device, or `undefined` when they cannot as far as the targets
 * tell. `deviceGroups` gives the groups of the devices listed by id in either target (from the
 * inventory), so that `--devices dev-1` and `--group lab` overlap when dev-1 is in lab.
 *
 * Two targets naming different groups are not an overlap here, even though one device may carry
 * both labels; such a device is held by the older rollout (see `holdingRollout`).
 */
export function targetOverlap(
  a: RolloutTarget,
  b: RolloutTarget,
  deviceGroups: ReadonlyMap<string, readonly string[]> = new Map(),
): string | undefined {
  if (a.product !== b.product) return undefined;
  if (isWholeProduct(a) || isWholeProduct(b)) return `both target product "${a.product}"`;
  const group = a.groups.find((g) => b.groups.includes(g));
  if (group !== undefined) return `both target group "${group}"`;
  const device = a.devices.find((d) => b.devices.includes(d));
  if (device !== undefined) return `both target device "${device}"`;
  for (const [one, other] of [[a, b], [b, a]]) {
    for (const id of one.devices) {
      const g = (deviceGroups.get(id) ?? []).find((g) => other.groups.includes(g));
      if (g !== undefined) return `device "${id}" is in group "${g}"`;
    }
  }
  return undefined;
}
