/**
 * 2-D convolution on CPU, NCHW input, [O, C/groups, KH, KW] filters.
 * General case: im2col per image and group, then one GEMM (cols are recomputed in backward rather than
 * kept: they are KH*KW times larger than the input). 1x1/stride-1/no-pad convolutions skip im2col: the
 * input already is the [C, H*W] matrix. Depthwise (one input channel per group) runs as direct loops.
 */
import { alloc, type TypedArray, dtypeOf } from '../../tensor/tensor.js';
import { gemm, mat } from './gemm.js';

export interface ConvGeometry {
  N: number; C: number; H: number; W: number;
  O: number; KH: number; KW: number; OH: number; OW: number;
  groups: number;
  strideH: number; strideW: number;
  padTop: number; padLeft: number;
  dilationH: number; dilationW: number;
}

const isPointwise = (g: ConvGeometry): boolean =>
  g.KH === 1 && g.KW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0 && g.OH === g.H && g.OW === g.W;
const isDepthwise = (g: ConvGeometry): boolean => g.groups === g.C && g.groups > 1;

/** cols[(c*KH + ki)*KW + kj, oh*OW + ow] = x[c, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw] (0 outside). */
function im2col(x: TypedArray, xOff: number, channels: number, g: ConvGeometry, cols: TypedArray): void {
  const P = g.OH * g.OW;
  for (let c = 0; c < channels; c++) {
    for (let ki = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const row = ((c * g.KH + ki) * g.KW + kj) * P;
        for (let oh = 0; oh < g.OH; oh++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          const dst = row + oh * g.OW;
          if (ih < 0 || ih >= g.H) {
            cols.fill(0, dst, dst + g.OW);
            continue;
          }
          const src = xOff + (c * g.H + ih) * g.W;
          for (let ow = 0; ow < g.OW; ow++) {
            const iw = ow * g.strideW - g.padLeft + kj * g.dilationW;
            cols[dst + ow] = iw >= 0 && iw < g.W ? x[src + iw]! : 0;
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: scatter-add cols back onto the image. */
function col2im(cols: TypedArray, channels: number, g: ConvGeometry, dx: TypedArray, dxOff: number): void {
  const P = g.OH * g.OW;
  for (let c = 0; c < channels; c++) {
    for (let ki = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const row = ((c * g.KH + ki) * g.KW + kj) * P;
        for (let oh = 0; oh < g.OH; oh++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          if (ih < 0 || ih >= g.H) continue;
          const dst = dxOff + (c * g.H + ih) * g.W;
          const src = row + oh * g.OW;
          for (let ow = 0; ow < g.OW; ow++) {
            const iw = ow * g.strideW - g.padLeft + kj * g.dilationW;
            if (iw >= 0 && iw < g.W) dx[dst + iw]! += cols[src + ow]!;
          }
        }
      }
    }
  }
}

export function conv2dForward(x: TypedArray, w: TypedArray, bias: TypedArray | null, g: ConvGeometry): TypedArray {
  const y = alloc(dtypeOf(x), g.N * g.O * g.OH * g.OW);
  if (isDepthwise(g)) depthwiseForward(x, w, y, g);
  else {
    const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW, P = g.OH * g.OW;
    const pointwise = isPointwise(g);
    const cols = pointwise ? x : alloc(dtypeOf(x), K * P);
    for (let n = 0; n < g.N; n++) {
      for (let gi = 0; gi < g.groups; gi++) {
        const xOff = (n * g.C + gi * Cg) * g.H * g.W;
        if (!pointwise) im2col(x, xOff, Cg, g, cols);
        const yOff = (n * g.O + gi * Og) * P;
        gemm(false, false, Og, P, K, mat(w, gi * Og * K, K), mat(cols, pointwise ? xOff : 0, P), mat(y, yOff, P), false);
      }
    }
  }
  if (bias) addBias(y, bias, g.N, g.O, g.OH * g.OW);
  return y;
}

function addBias(y: TypedArray, bias: TypedArray, N: number, O: number, P: number): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const b = bias[o]!, off = (n * O + o) * P;
      for (let p = 0; p < P; p++) y[off + p]! += b;
    }
  }
}

/** dL/dx = convolution's transpose applied to dy: Wᵀ·dY per group, then col2im. */
export function conv2dBackwardInput(dy: TypedArray, w: TypedArray, g: ConvGeometry): TypedArray {
  const dx = alloc(dtypeOf(dy), g.N * g.C * g.H * g.W);
  if (isDepthwise(g)) {
    depthwiseBackwardInput(dy, w, dx, g);
    return dx;
  }
  const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW, P = g.OH * g.OW;
  const pointwise = isPointwise(g);
  const dcols = pointwise ? dx : alloc(dtypeOf(dy), K * P);
  for (let n = 0; n < g.N; n++) {
    for (let gi = 0; gi < g.groups; gi++) {
      const dxOff = (n * g.C + gi * Cg) * g.H * g.W;
      const dyOff = (n * g.O + gi * Og) * P;
      gemm(true, false, K, P, Og, mat(w, gi * Og * K, K), mat(dy, dyOff, P), mat(dcols, pointwise ? dxOff : 0, P), false);
      if (!pointwise) col2im(dcols, Cg, g, dx, dxOff);
    }
  }
  return dx;
}

/** dL/dW = sum over images of dY·colsᵀ per group. */
export function conv2dBackwardFilter(dy: TypedArray, x: TypedArray, g: ConvGeometry): TypedArray {
  const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW, P = g.OH * g.OW;
  const dw = alloc(dtypeOf(dy), g.O * K);
  if (isDepthwise(g)) {
    depthwiseBackwardFilter(dy, x, dw, g);
    return dw;
  }
  const pointwise = isPointwise(g);
  const cols = pointwise ? x : alloc(dtypeOf(x), K * P);
  for (let n = 0; n < g.N; n++) {
    for (let gi = 0; gi < g.groups; gi++) {
      const xOff = (n * g.C + gi * Cg) * g.H * g.W;
      if (!pointwise) im2col(x, xOff, Cg, g, cols);
      const dyOff = (n * g.O + gi * Og) * P;
      gemm(false, true, Og, K, P, mat(dy, dyOff, P), mat(cols, pointwise ? xOff : 0, P), mat(dw, gi * Og * K, K), true);
    }
  }
  return dw;
}

export function conv2dBackwardBias(dy: TypedArray, g: ConvGeometry): TypedArray {
  const db = alloc(dtypeOf(dy), g.O);
  const P = g.OH * g.OW;
  for (let n = 0; n < g.N; n++) {
    for (let o = 0; o < g.O; o++) {
      let s = 0;
      const off = (n * g.O + o) * P;
      for (let p = 0; p < P; p++) s += dy[off + p]!;
      db[o]! += s;
    }
  }
  return db;
}

/*
 * Depthwise: group c holds input channel c and the M = O/C output channels c*M .. c*M+M-1.
 * For each output plane and each kernel tap (ki, kj), the tap adds a shifted, strided copy of the input
 * plane: forEachTapRow yields, per output row, the input row and the range of output columns whose input
 * column is inside the image, so the three kernels below are plain strided loops without bounds checks.
 */
function forEachTapRow(g: ConvGeometry, fn: (yBase: number, xBase: number, wi: number, owLo: number, owHi: number, xOff: number) => void): void {
  const M = g.O / g.C;
  for (let n = 0; n < g.N; n++) {
    for (let o = 0; o < g.O; o++) {
      const xPlane = (n * g.C + Math.floor(o / M)) * g.H * g.W;
      const yPlane = (n * g.O + o) * g.OH * g.OW;
      for (let ki = 0; ki < g.KH; ki++) {
        for (let kj = 0; kj < g.KW; kj++) {
          const shift = kj * g.dilationW - g.padLeft; // iw = ow * strideW + shift
          const owLo = Math.max(0, Math.ceil(-shift / g.strideW));
          const owHi = Math.min(g.OW, Math.floor((g.W - 1 - shift) / g.strideW) + 1);
          if (owHi <= owLo) continue;
          const wi = (o * g.KH + ki) * g.KW + kj;
          for (let oh = 0; oh < g.OH; oh++) {
            const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
            if (ih < 0 || ih >= g.H) continue;
            fn(yPlane + oh * g.OW, xPlane + ih * g.W, wi, owLo, owHi, shift);
          }
        }
      }
    }
  }
}

function depthwiseForward(x: TypedArray, w: TypedArray, y: TypedArray, g: ConvGeometry): void {
  const sw = g.strideW;
  forEachTapRow(g, (yRow, xRow, wi, lo, hi, shift) => {
    const wv = w[wi]!;
    for (let ow = lo, xi = xRow + lo * sw + shift; ow < hi; ow++, xi += sw) y[yRow + ow]! += wv * x[xi]!;
  });
}

function depthwiseBackwardInput(dy: TypedArray, w: TypedArray, dx: TypedArray, g: ConvGeometry): void {
  const sw = g.strideW;
  forEachTapRow(g, (yRow, xRow, wi, lo, hi, shift) => {
    const wv = w[wi]!;
    for (let ow = lo, xi = xRow + lo * sw + shift; ow < hi; ow++, xi += sw) dx[xi]! += wv * dy[yRow + ow]!;
  });
}

function depthwiseBackwardFilter(dy: TypedArray, x: TypedArray, dw: TypedArray, g: ConvGeometry): void {
  const sw = g.strideW;
  forEachTapRow(g, (yRow, xRow, wi, lo, hi, shift) => {
    let acc = 0;
    for (let ow = lo, xi = xRow + lo * sw + shift; ow < hi; ow++, xi += sw) acc += x[xi]! * dy[yRow + ow]!;
    dw[wi]! += acc;
  });
}
