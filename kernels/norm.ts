/**
 * Normalization kernels over NCHW (P = H*W pixels per channel plane): per-channel reductions and the
 * affine map of batchnorm, LRN across channels, and L2 normalization along one axis.
 */
import type { KernelThis, Values } from './types.js';

/** PB = ceil(P / 32): reductions sum blocks of 32 pixels, then blocks, then images (small float32 rounding). */
export interface ChannelConstants { N: number; C: number; P: number; PB: number; RELU: number; M: number }

/** sum over n and p of a[n, c, p]!, one thread per channel (bias gradients, BN sums, dense bias gradient). */
function channelSum(this: KernelThis<ChannelConstants>, a: Values): number {
  const ch = this.thread.x;
  let acc = 0.0;
  for (let n = 0; n < this.constants.N; n++) {
    let plane = 0.0;
    for (let b = 0; b < this.constants.PB; b++) {
      let block = 0.0;
      for (let q = 0; q < 32; q++) {
        const p = b * 32 + q;
        if (p < this.constants.P) {
          block += a[(n * this.constants.C + ch) * this.constants.P + p]!;
        }
      }
      plane += block;
    }
    acc += plane;
  }
  return acc;
}

/** sum over n and p of (x - mean[c]!)² (the biased variance times M, two-pass for accuracy). */
function channelSquaredDeviation(this: KernelThis<ChannelConstants>, x: Values, mean: Values): number {
  const ch = this.thread.x;
  const m = mean[ch]!;
  let acc = 0.0;
  for (let n = 0; n < this.constants.N; n++) {
    let plane = 0.0;
    for (let b = 0; b < this.constants.PB; b++) {
      let block = 0.0;
      for (let q = 0; q < 32; q++) {
        const p = b * 32 + q;
        if (p < this.constants.P) {
          const d = x[(n * this.constants.C + ch) * this.constants.P + p]! - m;
          block += d * d;
        }
      }
      plane += block;
    }
    acc += plane;
  }
  return acc;
}

/** sum over n and p of dy * xhat with xhat = (x - mean) * invstd: BN's gamma gradient. */
function channelSumDyXhat(this: KernelThis<ChannelConstants>, dy: Values, x: Values, mean: Values, invstd: Values): number {
  const ch = this.thread.x;
  const m = mean[ch]!;
  const s = invstd[ch]!;
  let acc = 0.0;
  for (let n = 0; n < this.constants.N; n++) {
    let plane = 0.0;
    for (let b = 0; b < this.constants.PB; b++) {
      let block = 0.0;
      for (let q = 0; q < 32; q++) {
        const p = b * 32 + q;
        if (p < this.constants.P) {
          const k = (n * this.constants.C + ch) * this.constants.P + p;
          block += dy[k]! * (x[k]! - m);
        }
      }
      plane += block;
    }
    acc += plane;
  }
  return acc * s;
}

/** y = act(x * scale[c]! + shift[c]!): eval batchnorm, a training batchnorm's output, per-channel bias. */
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
  channelSum: { fn: channelSum, outputSize: (c: ChannelConstants) => c.C },
  channelSquaredDeviation: { fn: channelSquaredDeviation, outputSize: (c: ChannelConstants) => c.C },
  channelSumDyXhat: { fn: channelSumDyXhat, outputSize: (c: ChannelConstants) => c.C },
  channelAffine: { fn: channelAffine, outputSize: (c: ChannelConstants) => c.N * c.C * c.P },
  batchNormTrainBackward: { fn: batchNormTrainBackward, outputSize: (c: ChannelConstants) => c.N * c.C * c.P },
  lrnForward: { fn: lrnForward, outputSize: (c: LrnConstants & { N: number }) => c.N * c.C * c.P },
  lrnBackward: { fn: lrnBackward, outputSize: (c: LrnConstants & { N: number }) => c.N * c.C * c.P },
  l2NormalizeForward: { fn: l2NormalizeForward, outputSize: (c: L2NormConstants & { SIZE: number }) => c.SIZE },
  l2NormalizeBackward: { fn: l2NormalizeBackward, outputSize: (c: L2NormConstants & { SIZE: number }) => c.SIZE },
};
