/**
 * 2-D pooling, NCHW: MODE 0 max, 1 average, 2 L2 (sqrt of the window's sum of squares). Windows are
 * clipped to the image as on the CPU: padding is -inf for max, 0 for L2, and counts in the average's
 * divisor only when INCLUDE_PAD is 1. The backward gathers, for each input pixel, the windows covering it.
 */
import type { KernelThis, Values } from './types.js';

export interface PoolConstants {
  N: number; C: number; H: number; W: number; OH: number; OW: number;
  KH: number; KW: number; SH: number; SW: number;
  PT: number; PB: number; PL: number; PR: number;
  MODE: number; INCLUDE_PAD: number;
}

function pool2dForward(this: KernelThis<PoolConstants>, x: Values): number {
  const i = this.thread.x;
  const q1 = Math.floor((i + 0.5) / this.constants.OW);
  const ow = i - q1 * this.constants.OW;
  const plane = Math.floor((q1 + 0.5) / this.constants.OH);
  const oh = q1 - plane * this.constants.OH;
  const hs = oh * this.constants.SH - this.constants.PT;
  const ws = ow * this.constants.SW - this.constants.PL;
  let best = -3.4e38;
  let sum = 0.0;
  let count = 0.0;
  for (let kh = 0; kh < this.constants.KH; kh++) {
    const h = hs + kh;
    if (h >= 0 && h < this.constants.H) {
      for (let kw = 0; kw < this.constants.KW; kw++) {
        const w = ws + kw;
        if (w >= 0 && w < this.constants.W) {
          const v = x[(plane * this.constants.H + h) * this.constants.W + w]!;
          best = Math.max(best, v);
          if (this.constants.MODE === 2) {
            sum += v * v;
          } else {
            sum += v;
          }
          count += 1.0;
        }
      }
    }
  }
  if (this.constants.MODE === 0) {
    return best;
  }
  if (this.constants.MODE === 2) {
    return Math.sqrt(sum);
  }
  if (this.constants.INCLUDE_PAD > 0) {
    const he = Math.min(hs + this.constants.KH, this.constants.H + this.constants.PB);
    const we = Math.min(ws + this.constants.KW, this.constants.W + this.constants.PR);
    return sum / ((he - hs) * (we - ws));
  }
  return sum / count;
}

/** dx: max routes dy to the window's first maximum (as the CPU's argmax), avg shares it, L2 scales by x / y. */
function pool2dBackward(this: KernelThis<PoolConstants>, dy: Values, x: Values, y: Values): number {
  const i = this.thread.x;
  const q1 = Math.floor((i + 0.5) / this.constants.W);
  const iw = i - q1 * this.constants.W;
  const plane = Math.floor((q1 + 0.5) / this.constants.H);
  const ih = q1 - plane * this.constants.H;
  const xi = x[i]!;
  let acc = 0.0;
  // Output rows oh with oh*SH - PT <= ih < oh*SH - PT + KH, i.e. the KH candidates below, clipped to [0, OH).
  const ohTop = Math.floor((ih + this.constants.PT + 0.5) / this.constants.SH);
  const owTop = Math.floor((iw + this.constants.PL + 0.5) / this.constants.SW);
  for (let a = 0; a < this.constants.KH; a++) {
    const oh = ohTop - a;
    const hs = oh * this.constants.SH - this.constants.PT;
    if (oh >= 0 && oh < this.constants.OH && ih < hs + this.constants.KH) {
      for (let b = 0; b < this.constants.KW; b++) {
        const ow = owTop - b;
        const ws = ow * this.constants.SW - this.constants.PL;
        if (ow >= 0 && ow < this.constants.OW && iw < ws + this.constants.KW) {
          const o = (plane * this.constants.OH + oh) * this.constants.OW + ow;
          if (this.constants.MODE === 0) {
            // This pixel wins if it is the first maximum of the clipped window, in row-major order.
            let wins = 1.0;
            for (let kh = 0; kh < this.constants.KH; kh++) {
              const h = hs + kh;
              for (let kw = 0; kw < this.constants.KW; kw++) {
                const w = ws + kw;
                if (h >= 0 && h < this.constants.H && w >= 0 && w < this.constants.W) {
                  const v = x[(plane * this.constants.H + h) * this.constants.W + w]!;
                  const before = h < ih || (h === ih && w < iw);
                  if (v > xi || (before && v === xi)) {
                    wins = 0.0;
                  }
                }
              }
            }
            acc += wins * dy[o]!;
          } else if (this.constants.MODE === 2) {
            if (y[o]! > 0) {
              acc += dy[o]! * xi / y[o]!;
            }
          } else {
            let divisor = 0.0;
            if (this.constants.INCLUDE_PAD > 0) {
              const he = Math.min(hs + this.constants.KH, this.constants.H + this.constants.PB);
              const we = Math.min(ws + this.constants.KW, this.constants.W + this.constants.PR);
              divisor = (he - hs) * (we - ws);
            } else {
              divisor = (Math.min(hs + this.constants.KH, this.constants.H) - Math.max(hs, 0)) * (Math.min(ws + this.constants.KW, this.constants.W) - Math.max(ws, 0));
            }
            acc += dy[o]! / divisor;
          }
        }
      }
    }
  }
  return acc;
}

export const POOL_KERNELS = {
  pool2dForward: { fn: pool2dForward, outputSize: (c: PoolConstants) => c.N * c.C * c.OH * c.OW },
  pool2dBackward: { fn: pool2dBackward, outputSize: (c: PoolConstants) => c.N * c.C * c.H * c.W },
};
