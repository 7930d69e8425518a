/**
 * 2-D pooling on CPU, NCHW. Each output pixel reads the window rows [h0, h1) x cols [w0, w1) clipped to the
 * image; padding contributes -inf to max, 0 to the L2 sum, and (optionally) to the average's divisor.
 */
import { alloc, dtypeOf, type TypedArray } from '../../tensor/tensor.js';

export interface PoolGeometry {
  N: number; C: number; H: number; W: number;
  KH: number; KW: number; OH: number; OW: number;
  strideH: number; strideW: number;
  padTop: number; padBottom: number; padLeft: number; padRight: number;
}

/** Calls fn(plane, outIndex, h0, h1, w0, w1, paddedCount) for every output pixel; plane = n*C + c. */
function forEachWindow(g: PoolGeometry, fn: (plane: number, o: number, h0: number, h1: number, w0: number, w1: number, padded: number) => void): void {
  for (let plane = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < g.OH; oh++) {
      const hs = oh * g.strideH - g.padTop;
      const he = Math.min(hs + g.KH, g.H + g.padBottom);
      for (let ow = 0; ow < g.OW; ow++) {
        const ws = ow * g.strideW - g.padLeft;
        const we = Math.min(ws + g.KW, g.W + g.padRight);
        const o = (plane * g.OH + oh) * g.OW + ow;
        fn(plane, o, Math.max(hs, 0), Math.min(he, g.H), Math.max(ws, 0), Math.min(we, g.W), (he - hs) * (we - ws));
      }
    }
  }
}

/** Max pool; argmax[o] is the flat input index that won (the first one at ties), for the backward. */
export function maxPoolForward(x: TypedArray, g: PoolGeometry): { y: TypedArray; argmax: Int32Array } {
  const y = alloc(dtypeOf(x), g.N * g.C * g.OH * g.OW);
  const argmax = new Int32Array(y.length);
  forEachWindow(g, (plane, o, h0, h1, w0, w1) => {
    let best = -Infinity, at = -1;
    for (let h = h0; h < h1; h++) {
      for (let w = w0; w < w1; w++) {
        const i = (plane * g.H + h) * g.W + w;
        if (x[i]! > best || at < 0) { best = x[i]!; at = i; }
      }
    }
    y[o] = best;
    argmax[o] = at;
  });
  return { y, argmax };
}

export function maxPoolBackward(dy: TypedArray, argmax: Int32Array, inputSize: number): TypedArray {
  const dx = alloc(dtypeOf(dy), inputSize);
  for (let o = 0; o < dy.length; o++) dx[argmax[o]!]! += dy[o]!;
  return dx;
}

export function avgPoolForward(x: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  const y = alloc(dtypeOf(x), g.N * g.C * g.OH * g.OW);
  forEachWindow(g, (plane, o, h0, h1, w0, w1, padded) => {
    let s = 0;
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) s += x[(plane * g.H + h) * g.W + w]!;
    y[o] = s / (countIncludePad ? padded : (h1 - h0) * (w1 - w0));
  });
  return y;
}

export function avgPoolBackward(dy: TypedArray, g: PoolGeometry, countIncludePad: boolean): TypedArray {
  const dx = alloc(dtypeOf(dy), g.N * g.C * g.H * g.W);
  forEachWindow(g, (plane, o, h0, h1, w0, w1, padded) => {
    const share = dy[o]! / (countIncludePad ? padded : (h1 - h0) * (w1 - w0));
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) dx[(plane * g.H + h) * g.W + w]! += share;
  });
  return dx;
}

/** L2 pool (FaceNet): y = sqrt(sum of x² over the window); padding adds nothing. */
export function l2PoolForward(x: TypedArray, g: PoolGeometry): TypedArray {
  const y = alloc(dtypeOf(x), g.N * g.C * g.OH * g.OW);
  forEachWindow(g, (plane, o, h0, h1, w0, w1) => {
    let s = 0;
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) s += x[(plane * g.H + h) * g.W + w]! ** 2;
    y[o] = Math.sqrt(s);
  });
  return y;
}

/** dy/dx_i = x_i / y for each x_i in the window (0 where the window is all zeros: a subgradient). */
export function l2PoolBackward(dy: TypedArray, x: TypedArray, y: TypedArray, g: PoolGeometry): TypedArray {
  const dx = alloc(dtypeOf(dy), x.length);
  forEachWindow(g, (plane, o, h0, h1, w0, w1) => {
    if (y[o] === 0) return;
    const scale = dy[o]! / y[o]!;
    for (let h = h0; h < h1; h++) {
      for (let w = w0; w < w1; w++) {
        const i = (plane * g.H + h) * g.W + w;
        dx[i]! += scale * x[i]!;
      }
    }
  });
  return dx;
}
