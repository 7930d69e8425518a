/**
 * Convolution kernels, NCHW, filters [O, C/groups, KH, KW]. One thread per output element; the input
 * gradient is gathered per input pixel (no scatter, no atomics) and the filter gradient per filter tap.
 */
import type { KernelThis, Values } from './types.js';

/** Geometry shared by the three kernels (CG = C/groups input channels and OG = O/groups outputs per group). */
export interface ConvConstants {
  N: number; C: number; H: number; W: number; O: number; OH: number; OW: number;
  KH: number; KW: number; SH: number; SW: number; PT: number; PL: number; DH: number; DW: number;
  CG: number; OG: number;
  /** 1: clamp the result at 0 (a fused ReLU). */
  RELU: number;
}

/** y = act(scale[o] * sum(x * w) + shift[o]): a plain conv with bias has scale 1, shift = bias; eval BN folds in. */
function conv2dForward(this: KernelThis<ConvConstants>, x: Values, w: Values, scale: Values, shift: Values): number {
  const i = this.thread.x;
  const q1 = Math.floor((i + 0.5) / this.constants.OW);
  const ow = i - q1 * this.constants.OW;
  const q2 = Math.floor((q1 + 0.5) / this.constants.OH);
  const oh = q1 - q2 * this.constants.OH;
  const n = Math.floor((q2 + 0.5) / this.constants.O);
  const o = q2 - n * this.constants.O;
  const group = Math.floor((o + 0.5) / this.constants.OG);
  let acc = 0.0;
  for (let ci = 0; ci < this.constants.CG; ci++) {
    const xPlane = (n * this.constants.C + group * this.constants.CG + ci) * this.constants.H;
    const wPlane = (o * this.constants.CG + ci) * this.constants.KH;
    for (let kh = 0; kh < this.constants.KH; kh++) {
      const ih = oh * this.constants.SH - this.constants.PT + kh * this.constants.DH;
      if (ih >= 0 && ih < this.constants.H) {
        for (let kw = 0; kw < this.constants.KW; kw++) {
          const iw = ow * this.constants.SW - this.constants.PL + kw * this.constants.DW;
          if (iw >= 0 && iw < this.constants.W) {
            acc += x[(xPlane + ih) * this.constants.W + iw]! * w[(wPlane + kh) * this.constants.KW + kw]!;
          }
        }
      }
    }
  }
  const v = acc * scale[o]! + shift[o]!;
  if (this.constants.RELU > 0 && v < 0) {
    return 0.0;
  }
  return v;
}

/** The 1x1, stride-1, unpadded, ungrouped case (the Inception reductions): a matrix product per image. */
function conv1x1Forward(this: KernelThis<ConvConstants>, x: Values, w: Values, scale: Values, shift: Values): number {
  const i = this.thread.x;
  const P = this.constants.H * this.constants.W;
  const q = Math.floor((i + 0.5) / P);
  const p = i - q * P;
  const n = Math.floor((q + 0.5) / this.constants.O);
  const o = q - n * this.constants.O;
  let acc = 0.0;
  for (let ci = 0; ci < this.constants.C; ci++) {
    acc += x[(n * this.constants.C + ci) * P + p]! * w[o * this.constants.C + ci]!;
  }
  const v = acc * scale[o]! + shift[o]!;
  if (this.constants.RELU > 0 && v < 0) {
    return 0.0;
  }
  return v;
}

/** dx[n, ci, ih, iw] = sum over the outputs whose window covers (ih, iw) of dy * w at that tap. */
function conv2dBackwardInput(this: KernelThis<ConvConstants>, dy: Values, w: Values): number {
  const i = this.thread.x;
  const q1 = Math.floor((i + 0.5) / this.constants.W);
  const iw = i - q1 * this.constants.W;
  const q2 = Math.floor((q1 + 0.5) / this.constants.H);
  const ih = q1 - q2 * this.constants.H;
  const n = Math.floor((q2 + 0.5) / this.constants.C);
  const ch = q2 - n * this.constants.C;
  const group = Math.floor((ch + 0.5) / this.constants.CG);
  const cig = ch - group * this.constants.CG;
  let acc = 0.0;
  for (let og = 0; og < this.constants.OG; og++) {
    const o = group * this.constants.OG + og;
    for (let kh = 0; kh < this.constants.KH; kh++) {
      const th = ih + this.constants.PT - kh * this.constants.DH;
      const oh = Math.floor((th + 0.5) / this.constants.SH);
      if (th >= 0 && oh * this.constants.SH === th && oh < this.constants.OH) {
        for (let kw = 0; kw < this.constants.KW; kw++) {
          const tw = iw + this.constants.PL - kw * this.constants.DW;
          const ow = Math.floor((tw + 0.5) / this.constants.SW);
          if (tw >= 0 && ow * this.constants.SW === tw && ow < this.constants.OW) {
            acc += dy[((n * this.constants.O + o) * this.constants.OH + oh) * this.constants.OW + ow]! * w[((o * this.constants.CG + cig) * this.constants.KH + kh) * this.constants.KW + kw]!;
          }
        }
      }
    }
  }
  return acc;
}

/** dw[o, cig, kh, kw] = sum over images and output pixels of dy * the input pixel under that tap. */
function conv2dBackwardFilter(this: KernelThis<ConvConstants>, dy: Values, x: Values): number {
  const i = this.thread.x;
  const q1 = Math.floor((i + 0.5) / this.constants.KW);
  const kw = i - q1 * this.constants.KW;
  const q2 = Math.floor((q1 + 0.5) / this.constants.KH);
  const kh = q1 - q2 * this.constants.KH;
  const o = Math.floor((q2 + 0.5) / this.constants.CG);
  const cig = q2 - o * this.constants.CG;
  const ch = Math.floor((o + 0.5) / this.constants.OG) * this.constants.CG + cig;
  // Summed per image row, then per image, then over images: partial sums keep float32 rounding small
  // (this gradient is a small difference of large terms when a training-mode batchnorm follows).
  let acc = 0.0;
  for (let n = 0; n < this.constants.N; n++) {
    let image = 0.0;
    for (let oh = 0; oh < this.constants.OH; oh++) {
      const ih = oh * this.constants.SH - this.constants.PT + kh * this.constants.DH;
      if (ih >= 0 && ih < this.constants.H) {
        let row = 0.0;
        for (let ow = 0; ow < this.constants.OW; ow++) {
          const iw = ow * this.constants.SW - this.constants.PL + kw * this.constants.DW;
          if (iw >= 0 && iw < this.constants.W) {
            row += dy[((n * this.constants.O + o) * this.constants.OH + oh) * this.constants.OW + ow]! * x[((n * this.constants.C + ch) * this.constants.H + ih) * this.constants.W + iw]!;
          }
        }
        image += row;
      }
    }
    acc += image;
  }
  return acc;
}

export const CONV_KERNELS = {
  conv2dForward: { fn: conv2dForward, outputSize: (c: ConvConstants) => c.N * c.O * c.OH * c.OW },
  conv1x1Forward: { fn: conv1x1Forward, outputSize: (c: ConvConstants) => c.N * c.O * c.OH * c.OW },
  conv2dBackwardInput: { fn: conv2dBackwardInput, outputSize: (c: ConvConstants) => c.N * c.C * c.H * c.W },
  conv2dBackwardFilter: { fn: conv2dBackwardFilter, outputSize: (c: ConvConstants) => c.O * c.CG * c.KH * c.KW },
};
