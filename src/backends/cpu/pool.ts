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

/**
 * Sum of x (or of x², for L2 pooling) over each window, in float64, into y. An output row at a time: each
 * input row of its windows is added onto the row's float64 sums, so every window is summed in row-major
 * order, as a loop per window would, without reading the window tables for every value (measured alone,
 * 3x3 stride-1 windows over 16x96x12x12: 5.6 -> 4.1 ms; spread, below, 6.5 -> 4.6 ms).
 */
function windowSums(x: TypedArray, g: PoolGeometry, win: Windows, squares: boolean, y = alloc(dtypeOf(x), g.N * g.C * g.OH * g.OW)): TypedArray {
  const { h0, h1, w0, w1 } = win, sums = new Float64Array(g.OW);
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++, o += g.OW) {
      for (let ow = 0; ow < g.OW; ow++) sums[ow] = 0; // (fill and set calls cost more than these loops on short rows)
      for (let h = h0[oh]!; h < h1[oh]!; h++) {
        const row = (plane * g.H + h) * g.W;
        for (let ow = 0; ow < g.OW; ow++) {
          let s = sums[ow]!;
          const end = row + w1[ow]!;
          if (squares) for (let i = row + w0[ow]!; i < end; i++) s += x[i]! * x[i]!;
          else for (let i = row + w0[ow]!; i < end; i++) s += x[i]!;
          sums[ow] = s;
        }
      }
      for (let ow = 0; ow < g.OW; ow++) y[o + ow] = sums[ow]!;
    }
  }
  return y;
}

/** The divisor of each output pixel's average (one plane's, row-major): the padded window, or only its part inside the image. */
function windowDivisors(g: PoolGeometry, win: Windows, countIncludePad: boolean): Float64Array {
  const d = new Float64Array(g.OH * g.OW);
  for (let oh = 0, o = 0; oh < g.OH; oh++) {
    for (let ow = 0; ow < g.OW; ow++, o++) {
      d[o] = countIncludePad ? win.hSpan[oh]! * win.wSpan[ow]! : (win.h1[oh]! - win.h0[oh]!) * (win.w1[ow]! - win.w0[ow]!);
    }
  }
  return d;
}

/**
 * Whether the windows are 2x2, stride 2, unpadded (the ResNet-34's shortcut pools): each input is in at
 * most one window, all windows are whole, and a straight-line loop replaces the window loops (3-9x faster).
 */
const isHalving = (g: PoolGeometry): boolean =>
  g.KH === 2 && g.KW === 2 && g.strideH === 2 && g.strideW === 2 && g.padTop + g.padBottom + g.padLeft + g.padRight === 0 && 2 * g.OH <= g.H && 2 * g.OW <= g.W;

/** avgPoolForward of halving windows (isHalving): the same float64 sums, in the same order, over 4. */
function halvingAverages(x: TypedArray, g: PoolGeometry): TypedArray {
  const y = allocUnfilled(dtypeOf(x), g.N * g.C * g.OH * g.OW);
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      const top = (plane * g.H + 2 * oh) * g.W, bottom = top + g.W;
      for (let i = 0; i < 2 * g.OW; i += 2, o++) {
        y[o] = 0 + x[top + i]! + x[top + i + 1]! + x[bottom + i]! + x[bottom + i + 1]!;
        y[o] = y[o]! / 4; // the sum rounded to y's type first, as windowSums stores it
      }
    }
  }
  return y;
}

/** avgPoolBackward of halving windows into the zeroed dx: each input gets its window's dy / 4, added onto 0 as spread adds it. */
function halvingGradient(dy: TypedArray, g: PoolGeometry, dx: TypedArray): TypedArray {
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      const top = (plane * g.H + 2 * oh) * g.W, bottom = top + g.W;
      for (let i = 0; i < 2 * g.OW; i += 2, o++) dx[top + i] = dx[top + i + 1] = dx[bottom + i] = dx[bottom + i + 1] = 0 + dy[o]! / 4;
    }
  }
  return dx;
}

export function avgPoolForward(x: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  if (isHalving(g)) return halvingAverages(x, g);
  const win = windows(g), divisors = windowDivisors(g, win, countIncludePad), outPlane = g.OH * g.OW;
  const y = windowSums(x, g, win, false);
  for (let at = 0; at < y.length; at += outPlane) {
    for (let o = 0; o < outPlane; o++) y[at + o] = y[at + o]! / divisors[o]!;
  }
  return y;
}

/**
 * Adds each output pixel's share, times `weight(i)` (1 when null), onto every input of its window. An
 * output row at a time: `shares(o, oh, row)` writes the row's shares (outputs o..o+OW-1) into `row`, then
 * each input row of the windows gets them. Each input receives its windows' shares in output order, as a
 * loop per window would add them.
 */
function spread(dx: TypedArray, g: PoolGeometry, win: Windows, shares: (o: number, oh: number, row: Float64Array) => void, weight: TypedArray | null): void {
  const { h0, h1, w0, w1 } = win, share = new Float64Array(g.OW);
  for (let plane = 0, o = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++, o += g.OW) {
      shares(o, oh, share);
      for (let h = h0[oh]!; h < h1[oh]!; h++) {
        const row = (plane * g.H + h) * g.W;
        for (let ow = 0; ow < g.OW; ow++) {
          const v = share[ow]!, end = row + w1[ow]!;
          if (v === 0) continue;
          if (weight) for (let i = row + w0[ow]!; i < end; i++) dx[i]! += v * weight[i]!;
          else for (let i = row + w0[ow]!; i < end; i++) dx[i]! += v;
        }
      }
    }
  }
}

export function avgPoolBackward(dy: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  const dx = alloc(dtypeOf(dy), g.N * g.C * g.H * g.W);
  if (isHalving(g)) return halvingGradient(dy, g, dx);
  const win = windows(g), divisors = windowDivisors(g, win, countIncludePad);
  spread(dx, g, win, (o, oh, row) => { for (let ow = 0; ow < g.OW; ow++) row[ow] = dy[o + ow]! / divisors[oh * g.OW + ow]!; }, null);
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
  spread(dx, g, win, (o, _oh, row) => { for (let ow = 0; ow < g.OW; ow++) row[ow] = y[o + ow] === 0 ? 0 : dy[o + ow]! / y[o + ow]!; }, x);
  return dx;
}
