/**
 * Data movement. `window4` reads a rank-4 window of x at an offset (negative offsets and sizes past the
 * end read zeros): it is slice (and the gradient of pad) and pad (and the gradient of slice) in one.
 * `concat2` joins two tensors along an axis, seen as [outer, aLen] and [outer, bLen] blocks.
 */
import type { KernelThis, Values } from './types.js';

export interface WindowConstants {
  /** Output dims. */
  D0: number; D1: number; D2: number; D3: number;
  /** Input dims. */
  X0: number; X1: number; X2: number; X3: number;
  /** Where output (0,0,0,0) sits in the input. */
  F0: number; F1: number; F2: number; F3: number;
}

function window4(this: KernelThis<WindowConstants>, x: Values): number {
  const i = this.thread.x;
  const q3 = Math.floor((i + 0.5) / this.constants.D3);
  const i3 = i - q3 * this.constants.D3 + this.constants.F3;
  const q2 = Math.floor((q3 + 0.5) / this.constants.D2);
  const i2 = q3 - q2 * this.constants.D2 + this.constants.F2;
  const q1 = Math.floor((q2 + 0.5) / this.constants.D1);
  const i1 = q2 - q1 * this.constants.D1 + this.constants.F1;
  const i0 = q1 + this.constants.F0;
  if (i0 < 0 || i0 >= this.constants.X0 || i1 < 0 || i1 >= this.constants.X1 || i2 < 0 || i2 >= this.constants.X2 || i3 < 0 || i3 >= this.constants.X3) {
    return 0.0;
  }
  return x[((i0 * this.constants.X1 + i1) * this.constants.X2 + i2) * this.constants.X3 + i3]!;
}

export interface Concat2Constants { OUTER: number; A_LEN: number; B_LEN: number }

function concat2(this: KernelThis<Concat2Constants>, a: Values, b: Values): number {
  const i = this.thread.x;
  const row = this.constants.A_LEN + this.constants.B_LEN;
  const o = Math.floor((i + 0.5) / row);
  const r = i - o * row;
  if (r < this.constants.A_LEN) {
    return a[o * this.constants.A_LEN + r]!;
  }
  return b[o * this.constants.B_LEN + r - this.constants.A_LEN]!;
}

export const LAYOUT_KERNELS = {
  window4: { fn: window4, outputSize: (c: WindowConstants) => c.D0 * c.D1 * c.D2 * c.D3 },
  concat2: { fn: concat2, outputSize: (c: Concat2Constants) => c.OUTER * (c.A_LEN + c.B_LEN) },
};
