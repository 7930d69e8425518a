/**
 * Pairwise squared distances between the rows of a [N, D] and b [M, D] (triplet mining, galleries),
 * summed from differences so they are exact and >= 0, and their gradients.
 */
import type { KernelThis, Values } from './types.js';

export interface DistanceConstants { N: number; M: number; D: number }

function squaredDistances(this: KernelThis<DistanceConstants>, a: Values, b: Values): number {
  const t = this.thread.x;
  const i = Math.floor((t + 0.5) / this.constants.M);
  const j = t - i * this.constants.M;
  let acc = 0.0;
  for (let k = 0; k < this.constants.D; k++) {
    const d = a[i * this.constants.D + k]! - b[j * this.constants.D + k]!;
    acc += d * d;
  }
  return acc;
}

/** da[i, k] = sum_j 2 dy[i, j] (a[i, k] - b[j, k]). */
function squaredDistancesGradA(this: KernelThis<DistanceConstants>, dy: Values, a: Values, b: Values): number {
  const t = this.thread.x;
  const i = Math.floor((t + 0.5) / this.constants.D);
  const k = t - i * this.constants.D;
  let acc = 0.0;
  for (let j = 0; j < this.constants.M; j++) {
    acc += 2.0 * dy[i * this.constants.M + j]! * (a[t]! - b[j * this.constants.D + k]!);
  }
  return acc;
}

/** db[j, k] = -sum_i 2 dy[i, j] (a[i, k] - b[j, k]). */
function squaredDistancesGradB(this: KernelThis<DistanceConstants>, dy: Values, a: Values, b: Values): number {
  const t = this.thread.x;
  const j = Math.floor((t + 0.5) / this.constants.D);
  const k = t - j * this.constants.D;
  let acc = 0.0;
  for (let i = 0; i < this.constants.N; i++) {
    acc -= 2.0 * dy[i * this.constants.M + j]! * (a[i * this.constants.D + k]! - b[t]!);
  }
  return acc;
}

export const DISTANCE_KERNELS = {
  squaredDistances: { fn: squaredDistances, outputSize: (c: DistanceConstants) => c.N * c.M },
  squaredDistancesGradA: { fn: squaredDistancesGradA, outputSize: (c: DistanceConstants) => c.N * c.D },
  squaredDistancesGradB: { fn: squaredDistancesGradB, outputSize: (c: DistanceConstants) => c.M * c.D },
};
