/**
 * 2-D pooling on CPU, NCHW. Each output pixel reads the window rows [h0, h1) x cols [w0, w1) clipped to the
 * image; padding contributes -inf to max, 0 to the L2 sum, and (optionally) to the average's divisor.
 */
import { alloc, allocIndices, allocUnfilled, dtypeOf, type TypedArray } from '../../tensor/tensor.js';
import { l2PoolPlanes, maxPoolGradPlanes, maxPoolPlanes } from './wasm_pool.js';

export interface PoolGeometry {
  N: number; C: number; H: number; W: number;
  KH: number; KW: number; OH: number; OW: number;
  strideH: number; strideW: number;
  padTop: number; padBottom: number; padLeft: number; padRight: number;
}

/**
 * The clipped window of every output row and column: rows [h0[oh], h1[oh]) and columns [w0[ow], w1[ow]),
 * and the padded window's size (for averages that count padding). Computed once per call, so the forward
 * loops below are plain nested loops (a callback per output pixel, shared by several kernels, is one V8
 * cannot inline).
 */
interface Windows { h0: Int32Array; h1: Int32Array; hSpan: Int32Array; w0: Int32Array; w1: Int32Array; wSpan: Int32Array }

function windows(g: PoolGeometry): Windows {
  const axis = (out: number, stride: number, pad: number, k: number, size: number, padEnd: number): [Int32Array, Int32Array, Int32Array] => {
    const lo = new Int32Array(out), hi = new Int32Array(out), span = new Int32Array(out);
    for (let o = 0; o < out; o++) {
      const start = o * stride - pad, end = Math.min(start + k, size + padEnd);
      lo[o] = Math.max(start, 0);
      hi[o] = Math.min(end, size);
      span[o] = end - start;
    }
    return [lo, hi, span];
  };
  const [h0, h1, hSpan] = axis(g.OH, g.strideH, g.padTop, g.KH, g.H, g.padBottom);
  const [w0, w1, wSpan] = axis(g.OW, g.strideW, g.padLeft, g.KW, g.W, g.padRight);
  return { h0, h1, hSpan, w0, w1, wSpan };
}

/**
 * Max pool, and with `withArgmax` the flat input index that won each window (the first one at ties), for
 * the backward. A window holding a NaN gives NaN (its last NaN wins), as PyTorch's max pooling does: a NaN
 * is never hidden.
 */
export function maxPoolForward(x: TypedArray, g: PoolGeometry, withArgmax = true): { y: TypedArray; argmax: Int32Array | null } {
  const y = allocUnfilled(dtypeOf(x), g.N * g.C * g.OH * g.OW); // every window written
  const argmax = withArgmax ? allocIndices(y.length) : null; // every window's winner written
  const { h0, h1, w0, w1 } = windows(g);
  if (maxPoolPlanes(x, y, argmax, g.N * g.C, g.H, g.W, g.OH, g.OW, [h0, h1, w0, w1], g.strideW, g.KW, g.padLeft)) return { y, argmax };
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      for (let ow = 0; ow < g.OW; ow++, o++) {
        let best = -Infinity, at = -1;
        for (let h = h0[oh]!; h < h1[oh]!; h++) {
          for (let i = (plane * g.H + h) * g.W + w0[ow]!, end = i - w0[ow]! + w1[ow]!; i < end; i++) {
            const v = x[i]!;
            if (v > best || at < 0 || v !== v) { best = v; at = i; } // a NaN anywhere wins (as in PyTorch)
          }
        }
        y[o] = best;
        if (argmax) argmax[o] = at;
      }
    }
  }
  return { y, argmax };
}

export function maxPoolBackward(dy: TypedArray, argmax: Int32Array, g: PoolGeometry): TypedArray {
  const dx = allocUnfilled(dtypeOf(dy), g.N * g.C * g.H * g.W);
  if (maxPoolGradPlanes(dy, argmax, dx, g.N * g.C, g.H * g.W, g.OH * g.OW)) return dx; // every plane written
  dx.fill(0);
  for (let o = 0; o < dy.length; o++) dx[argmax[o]!]! += dy[o]!;
  return dx;
}

/** Sum of x (or of x², for L2 pooling) over each window, in float64, into y. */
function windowSums(x: TypedArray, g: PoolGeometry, win: Windows, squares: boolean, y = alloc(dtypeOf(x), g.N * g.C * g.OH * g.OW)): TypedArray {
  const { h0, h1, w0, w1 } = win;
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      for (let ow = 0; ow < g.OW; ow++, o++) {
        let s = 0;
        for (let h = h0[oh]!; h < h1[oh]!; h++) {
          const row = (plane * g.H + h) * g.W;
          if (squares) for (let w = w0[ow]!; w < w1[ow]!; w++) s += x[row + w]! * x[row + w]!;
          else for (let w = w0[ow]!; w < w1[ow]!; w++) s += x[row + w]!;
        }
        y[o] = s;
      }
    }
  }
  return y;
}

/** The divisor of each output pixel's average: the padded window, or only its part inside the image. */
function divisor(win: Windows, oh: number, ow: number, countIncludePad: boolean): number {
  return countIncludePad ? win.hSpan[oh]! * win.wSpan[ow]! : (win.h1[oh]! - win.h0[oh]!) * (win.w1[ow]! - win.w0[ow]!);
}

export function avgPoolForward(x: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  const win = windows(g);
  const y = windowSums(x, g, win, false);
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++, o++) y[o] = y[o]! / divisor(win, oh, ow, countIncludePad);
  }
  return y;
}

/** Spreads share(o, plane, oh, ow) times `weight(i)` (1 when null) over the window of each output pixel. */
function spread(dx: TypedArray, g: PoolGeometry, win: Windows, share: (o: number, oh: number, ow: number) => number, weight: TypedArray | null): void {
  const { h0, h1, w0, w1 } = win;
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      for (let ow = 0; ow < g.OW; ow++, o++) {
        const v = share(o, oh, ow);
        if (v === 0) continue;
        for (let h = h0[oh]!; h < h1[oh]!; h++) {
          const row = (plane * g.H + h) * g.W;
          if (weight) for (let w = w0[ow]!; w < w1[ow]!; w++) dx[row + w]! += v * weight[row + w]!;
          else for (let w = w0[ow]!; w < w1[ow]!; w++) dx[row + w]! += v;
        }
      }
    }
  }
}

export function avgPoolBackward(dy: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  const dx = alloc(dtypeOf(dy), g.N * g.C * g.H * g.W);
  const win = windows(g);
  spread(dx, g, win, (o, oh, ow) => dy[o]! / divisor(win, oh, ow, countIncludePad), null);
  return dx;
}

/** L2 pool (FaceNet): y = sqrt(sum of x² over the window); padding adds nothing. */
export function l2PoolForward(x: TypedArray, g: PoolGeometry): TypedArray {
  const win = windows(g);
  const y = allocUnfilled(dtypeOf(x), g.N * g.C * g.OH * g.OW); // every window written, on either path
  if (l2PoolPlanes(x, y, null, null, g.N * g.C, g.H, g.W, g.OH, g.OW, [win.h0, win.h1, win.w0, win.w1])) return y;
  windowSums(x, g, win, true, y);
  for (let o = 0; o < y.length; o++) y[o] = Math.sqrt(y[o]!);
  return y;
}

/** dy/dx_i = x_i / y for each x_i in the window (0 where the window is all zeros: a subgradient). */
export function l2PoolBackward(dy: TypedArray, x: TypedArray, y: TypedArray, g: PoolGeometry): TypedArray {
  const dx = allocUnfilled(dtypeOf(dy), x.length), win = windows(g);
  if (l2PoolPlanes(x, y, dy, dx, g.N * g.C, g.H, g.W, g.OH, g.OW, [win.h0, win.h1, win.w0, win.w1])) return dx; // every plane written
  dx.fill(0);
  spread(dx, g, win, (o) => (y[o] === 0 ? 0 : dy[o]! / y[o]!), x);
  return dx;
}
