/**
 * Normalization kernels over NCHW (P = H*W pixels per channel plane): per-channel reductions and the
 * affine map of batchnorm, LRN across channels, and L2 normalization along one axis.
 */
import type { KernelThis, Values } from './types.js';

export interface ChannelConstants {
  N: number; C: number; P: number;
  /** ceil(P / 32): the number of 32-pixel blocks per plane. */
  PB: number;
  RELU: number; M: number;
  /** channelReduce's term: see CHANNEL_REDUCE. */
  MODE: number;
}

/** channelReduce's MODE: the term summed per channel. */
export const CHANNEL_REDUCE = {
  /** a: bias gradients, BN sums, the batch mean. */
  sum: 0,
  /** (a - mean[c])²: the variance times M (two passes, for accuracy). */
  squaredDeviation: 1,
  /** b * (a - mean[c]) * scale[c]: BN's gamma gradient with a = x, b = dy, scale = invstd. */
  dotCentered: 2,
  /** a * b where a <= 0: PReLU's slope gradient with a = x, b = dy. */
  dotNegative: 3,
} as const;

/**
 * One thread per channel c: the sum over images n and pixels p of a term of a[n, c, p] (and b, mean[c],
 * scale[c]; unused operands are passed as one-element arrays). Blocks of 32 pixels are summed, then the
 * blocks, then the images: partial sums keep float32 rounding small, which matters because these sums
 * are often small differences of large terms (gradients before a training-mode batchnorm).
 */
function channelReduce(this: KernelThis<ChannelConstants>, a: Values, b: Values, mean: Values, scale: Values): number {
  const ch = this.thread.x;
  let m = 0.0;
  if (this.constants.MODE === 1 || this.constants.MODE === 2) {
    m = mean[ch]!;
  }
  let acc = 0.0;
  for (let n = 0; n < this.constants.N; n++) {
    let plane = 0.0;
    for (let blk = 0; blk < this.constants.PB; blk++) {
      let block = 0.0;
      for (let q = 0; q < 32; q++) {
        const p = blk * 32 + q;
        if (p < this.constants.P) {
          const k = (n * this.constants.C + ch) * this.constants.P + p;
          const v = a[k]!;
          if (this.constants.MODE === 0) {
            block += v;
          } else if (this.constants.MODE === 1) {
            block += (v - m) * (v - m);
          } else if (this.constants.MODE === 2) {
            block += b[k]! * (v - m);
          } else if (v <= 0) {
            block += v * b[k]!;
          }
        }
      }
      plane += block;
    }
    acc += plane;
  }
  if (this.constants.MODE === 2) {
    return acc * scale[ch]!;
  }
  return acc;
}

/** y = act(x * scale[c] + shift[c]): eval batchnorm, a training batchnorm's output, per-channel bias. */
function channelAffine(this: KernelThis<ChannelConstants>, x: Values, scale: Values, shift: Values): number {
  const i = this.thread.x;
  const q = Math.floor((i + 0.5) / this.constants.P);
  const ch = q - Math.floor((q + 0.5) / this.constants.C) * this.constants.C;
  const v = x[i]! * scale[ch]! + shift[ch]!;
  if (this.constants.RELU > 0 && v < 0) {
    return 0.0;
  }
  return v;
}

/**
 * Training BN input gradient: dx = k/M * (M*dy - sumDy - xhat*sumDyXhat), k = gamma*invstd (per channel,
 * passed as `gain`), xhat recomputed from x. M = N*P.
 */
function batchNormTrainBackward(this: KernelThis<ChannelConstants>, dy: Values, x: Values, mean: Values, invstd: Values, gain: Values, sumDy: Values, sumDyXhat: Values): number {
  const i = this.thread.x;
  const q = Math.floor((i + 0.5) / this.constants.P);
  const ch = q - Math.floor((q + 0.5) / this.constants.C) * this.constants.C;
  const xhat = (x[i]! - mean[ch]!) * invstd[ch]!;
  return (gain[ch]! / this.constants.M) * (this.constants.M * dy[i]! - sumDy[ch]! - xhat * sumDyXhat[ch]!);
}

export interface LrnConstants { C: number; P: number; R: number; K: number; SCALE: number; BETA: number }

/** y_c = x_c * (k + scale * sum_{|j-c|<=r} x_j²)^-beta; channel stride P inside one image. */
function lrnForward(this: KernelThis<LrnConstants>, x: Values): number {
  const i = this.thread.x;
  const q = Math.floor((i + 0.5) / this.constants.P);
  const p = i - q * this.constants.P;
  const n = Math.floor((q + 0.5) / this.constants.C);
  const ch = q - n * this.constants.C;
  let acc = 0.0;
  for (let d = 0; d < 2 * this.constants.R + 1; d++) {
    const j = ch - this.constants.R + d;
    if (j >= 0 && j < this.constants.C) {
      const v = x[(n * this.constants.C + j) * this.constants.P + p]!;
      acc += v * v;
    }
  }
  return x[i]! * Math.pow(this.constants.K + this.constants.SCALE * acc, -this.constants.BETA);
}

/** dx_c = dy_c s_c^-beta - 2 beta scale x_c sum_{|j-c|<=r} dy_j x_j s_j^(-beta-1), each s_j recomputed. */
function lrnBackward(this: KernelThis<LrnConstants>, dy: Values, x: Values): number {
  const i = this.thread.x;
  const q = Math.floor((i + 0.5) / this.constants.P);
  const p = i - q * this.constants.P;
  const n = Math.floor((q + 0.5) / this.constants.C);
  const ch = q - n * this.constants.C;
  let own = 0.0;
  let cross = 0.0;
  for (let d = 0; d < 2 * this.constants.R + 1; d++) {
    const j = ch - this.constants.R + d;
    if (j >= 0 && j < this.constants.C) {
      let acc = 0.0;
      for (let e = 0; e < 2 * this.constants.R + 1; e++) {
        const l = j - this.constants.R + e;
        if (l >= 0 && l < this.constants.C) {
          const v = x[(n * this.constants.C + l) * this.constants.P + p]!;
          acc += v * v;
        }
      }
      const s = this.constants.K + this.constants.SCALE * acc;
      const k = (n * this.constants.C + j) * this.constants.P + p;
      cross += dy[k]! * x[k]! * Math.pow(s, -this.constants.BETA - 1.0);
      if (j === ch) {
        own = Math.pow(s, -this.constants.BETA);
      }
    }
  }
  return dy[i]! * own - 2.0 * this.constants.BETA * this.constants.SCALE * x[i]! * cross;
}

export interface L2NormConstants { AXIS_LEN: number; INNER: number; EPS: number }

/** y = x / max(||x||, eps) along the axis; element i belongs to the vector (outer, inner). */
function l2NormalizeForward(this: KernelThis<L2NormConstants>, x: Values): number {
  const i = this.thread.x;
  const outer = Math.floor((i + 0.5) / (this.constants.AXIS_LEN * this.constants.INNER));
  const inner = i - Math.floor((i + 0.5) / this.constants.INNER) * this.constants.INNER;
  const base = outer * this.constants.AXIS_LEN * this.constants.INNER + inner;
  let ss = 0.0;
  for (let a = 0; a < this.constants.AXIS_LEN; a++) {
    const v = x[base + a * this.constants.INNER]!;
    ss += v * v;
  }
  return x[i]! / Math.max(Math.sqrt(ss), this.constants.EPS);
}

/** dx = (dy - y <y, dy>) / ||x|| where ||x|| > eps, else dy / eps. */
function l2NormalizeBackward(this: KernelThis<L2NormConstants>, dy: Values, x: Values): number {
  const i = this.thread.x;
  const outer = Math.floor((i + 0.5) / (this.constants.AXIS_LEN * this.constants.INNER));
  const inner = i - Math.floor((i + 0.5) / this.constants.INNER) * this.constants.INNER;
  const base = outer * this.constants.AXIS_LEN * this.constants.INNER + inner;
  let ss = 0.0;
  for (let a = 0; a < this.constants.AXIS_LEN; a++) {
    const v = x[base + a * this.constants.INNER]!;
    ss += v * v;
  }
  const norm = Math.sqrt(ss);
  if (norm <= this.constants.EPS) {
    return dy[i]! / this.constants.EPS;
  }
  let dot = 0.0;
  for (let a = 0; a < this.constants.AXIS_LEN; a++) {
    const k = base + a * this.constants.INNER;
    dot += x[k]! * dy[k]!;
  }
  return (dy[i]! - (x[i]! / norm) * (dot / norm)) / norm;
}

export const NORM_KERNELS = {
  channelReduce: { fn: channelReduce, outputSize: (c: ChannelConstants) => c.C },
  channelAffine: { fn: channelAffine, outputSize: (c: ChannelConstants) => c.N * c.C * c.P },
  batchNormTrainBackward: { fn: batchNormTrainBackward, outputSize: (c: ChannelConstants) => c.N * c.C * c.P },
  lrnForward: { fn: lrnForward, outputSize: (c: LrnConstants & { N: number }) => c.N * c.C * c.P },
  lrnBackward: { fn: lrnBackward, outputSize: (c: LrnConstants & { N: number }) => c.N * c.C * c.P },
  l2NormalizeForward: { fn: l2NormalizeForward, outputSize: (c: L2NormConstants & { SIZE: number }) => c.SIZE },
  l2NormalizeBackward: { fn: l2NormalizeBackward, outputSize: (c: L2NormConstants & { SIZE: number }) => c.SIZE },
};
