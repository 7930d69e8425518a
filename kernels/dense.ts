/**
 * Matrix product with optional transposes and a bias row: out[i, j] = sum_k A(i, k) * B(k, j) + bias[j],
 * where A(i, k) is a[i*K + k] (TA 0) or a[k*M + i] (TA 1), likewise B. Serves matmul, dense and their
 * gradients.
 */
import type { KernelThis, Values } from './types.js';

export interface GemmConstants { M: number; N: number; K: number; TA: number; TB: number; HAS_BIAS: number }

function gemm(this: KernelThis<GemmConstants>, a: Values, b: Values, bias: Values): number {
  const t = this.thread.x;
  const i = Math.floor((t + 0.5) / this.constants.N);
  const j = t - i * this.constants.N;
  let acc = 0.0;
  for (let k = 0; k < this.constants.K; k++) {
    let ai = i * this.constants.K + k;
    if (this.constants.TA > 0) {
      ai = k * this.constants.M + i;
    }
    let bi = k * this.constants.N + j;
    if (this.constants.TB > 0) {
      bi = j * this.constants.K + k;
    }
    acc += a[ai]! * b[bi]!;
  }
  if (this.constants.HAS_BIAS > 0) {
    return acc + bias[j]!;
  }
  return acc;
}

export const DENSE_KERNELS = {
  gemm: { fn: gemm, outputSize: (c: GemmConstants) => c.M * c.N },
};
