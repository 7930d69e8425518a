/**
 * Binary arithmetic with broadcasting, shapes padded to rank 4 (D0..D3 the output's, and each operand's
 * strides, 0 along a broadcast dimension). OP: see BINARY_OPS. The gradient of an operand sums over the
 * output positions that read it: RA0..RA3 are how many times each of its dimensions was repeated.
 */
import type { KernelThis, Values } from './types.js';

export const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 } as const;

export interface BinaryConstants {
  OP: number;
  D0: number; D1: number; D2: number; D3: number;
  A0: number; A1: number; A2: number; A3: number;
  B0: number; B1: number; B2: number; B3: number;
}

function binaryForward(this: KernelThis<BinaryConstants>, a: Values, b: Values): number {
  const i = this.thread.x;
  const q3 = Math.floor((i + 0.5) / this.constants.D3);
  const i3 = i - q3 * this.constants.D3;
  const q2 = Math.floor((q3 + 0.5) / this.constants.D2);
  const i2 = q3 - q2 * this.constants.D2;
  const i0 = Math.floor((q2 + 0.5) / this.constants.D1);
  const i1 = q2 - i0 * this.constants.D1;
  const va = a[i0 * this.constants.A0 + i1 * this.constants.A1 + i2 * this.constants.A2 + i3 * this.constants.A3]!;
  const vb = b[i0 * this.constants.B0 + i1 * this.constants.B1 + i2 * this.constants.B2 + i3 * this.constants.B3]!;
  if (this.constants.OP === 0) {
    return va + vb;
  }
  if (this.constants.OP === 1) {
    return va - vb;
  }
  if (this.constants.OP === 2) {
    return va * vb;
  }
  if (this.constants.OP === 3) {
    return va / vb;
  }
  if (this.constants.OP === 4) {
    if (va >= vb) {
      return va;
    }
    return vb;
  }
  if (va <= vb) {
    return va;
  }
  return vb;
}

export interface BinaryGradConstants extends BinaryConstants {
  /** 0: the gradient of a, 1: of b. */
  WHICH: number;
  /** The operand's own dimensions (padded to rank 4) and its repeat counts along each. */
  S0: number; S1: number; S2: number; S3: number;
  RA0: number; RA1: number; RA2: number; RA3: number;
}

/** d(out)/d(operand) summed over the repeats of one operand element. */
function binaryGrad(this: KernelThis<BinaryGradConstants>, dy: Values, a: Values, b: Values): number {
  const i = this.thread.x;
  const q3 = Math.floor((i + 0.5) / this.constants.S3);
  const s3 = i - q3 * this.constants.S3;
  const q2 = Math.floor((q3 + 0.5) / this.constants.S2);
  const s2 = q3 - q2 * this.constants.S2;
  const s0 = Math.floor((q2 + 0.5) / this.constants.S1);
  const s1 = q2 - s0 * this.constants.S1;
  let acc = 0.0;
  for (let r0 = 0; r0 < this.constants.RA0; r0++) {
    for (let r1 = 0; r1 < this.constants.RA1; r1++) {
      for (let r2 = 0; r2 < this.constants.RA2; r2++) {
        for (let r3 = 0; r3 < this.constants.RA3; r3++) {
          // Output coordinates: the repeat index along a broadcast dimension, else the operand's own.
          const o0 = s0 + r0;
          const o1 = s1 + r1;
          const o2 = s2 + r2;
          const o3 = s3 + r3;
          const va = a[o0 * this.constants.A0 + o1 * this.constants.A1 + o2 * this.constants.A2 + o3 * this.constants.A3]!;
          const vb = b[o0 * this.constants.B0 + o1 * this.constants.B1 + o2 * this.constants.B2 + o3 * this.constants.B3]!;
          const g = dy[((o0 * this.constants.D1 + o1) * this.constants.D2 + o2) * this.constants.D3 + o3]!;
          let d = 0.0;
          if (this.constants.OP === 0) {
            d = 1.0;
          } else if (this.constants.OP === 1) {
            d = 1.0 - 2.0 * this.constants.WHICH;
          } else if (this.constants.OP === 2) {
            d = vb;
            if (this.constants.WHICH > 0) {
              d = va;
            }
          } else if (this.constants.OP === 3) {
            d = 1.0 / vb;
            if (this.constants.WHICH > 0) {
              d = -va / (vb * vb);
            }
          } else {
            // maximum (OP 4) / minimum (OP 5): the first operand takes ties.
            let firstWins = 0.0;
            if ((this.constants.OP === 4 && va >= vb) || (this.constants.OP === 5 && va <= vb)) {
              firstWins = 1.0;
            }
            d = firstWins;
            if (this.constants.WHICH > 0) {
              d = 1.0 - firstWins;
            }
          }
          acc += g * d;
        }
      }
    }
  }
  return acc;
}

export const ELEMENTWISE_KERNELS = {
  binaryForward: { fn: binaryForward, outputSize: (c: BinaryConstants) => c.D0 * c.D1 * c.D2 * c.D3 },
  binaryGrad: { fn: binaryGrad, outputSize: (c: BinaryGradConstants) => c.S0 * c.S1 * c.S2 * c.S3 },
};
