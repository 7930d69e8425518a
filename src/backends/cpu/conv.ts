/**
 * 2-D convolution on CPU, NCHW input, [O, C/groups, KH, KW] filters.
 * General case: im2col, then GEMM (cols are recomputed in backward rather than kept: they are KH*KW
 * times larger than the input). 1x1/stride-1/no-pad convolutions skip im2col: the input already is the
 * [C, images*H*W] matrix. Depthwise (one input channel per group) runs as direct loops.
 */
import { alloc, type TypedArray, dtypeOf } from '../../tensor/tensor.js';
import { gemm, imagesMat, mat, type Matrix } from './gemm.js';

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

/**
 * For kernel column kj: input column iw = ow * strideW + shift, and the output columns [lo, hi) whose input
 * column lies inside the image (the others read padding).
 */
function columnRange(g: ConvGeometry, kj: number): { shift: number; lo: number; hi: number } {
  const shift = kj * g.dilationW - g.padLeft;
  const lo = Math.min(g.OW, Math.max(0, Math.ceil(-shift / g.strideW)));
  const hi = Math.max(lo, Math.min(g.OW, Math.ceil((g.W - shift) / g.strideW)));
  return { shift, lo, hi };
}

/**
 * cols[(c*KH + ki)*KW + kj, colOff + oh*OW + ow] = x[c, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw] (0 outside),
 * in a matrix with row stride ld (several images side by side share one cols matrix).
 */
function im2col(x: TypedArray, xOff: number, channels: number, g: ConvGeometry, cols: TypedArray, colOff: number, ld: number): void {
  for (let c = 0; c < channels; c++) {
    for (let ki = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const row = ((c * g.KH + ki) * g.KW + kj) * ld + colOff;
        const { shift, lo, hi } = columnRange(g, kj);
        for (let oh = 0; oh < g.OH; oh++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          const dst = row + oh * g.OW;
          if (ih < 0 || ih >= g.H) {
            cols.fill(0, dst, dst + g.OW);
            continue;
          }
          const src = xOff + (c * g.H + ih) * g.W + shift;
          for (let ow = 0; ow < lo; ow++) cols[dst + ow] = 0;
          if (g.strideW === 1) for (let ow = lo; ow < hi; ow++) cols[dst + ow] = x[src + ow]!;
          else for (let ow = lo; ow < hi; ow++) cols[dst + ow] = x[src + ow * g.strideW]!;
          for (let ow = hi; ow < g.OW; ow++) cols[dst + ow] = 0;
        }
      }
    }
  }
}

/** The adjoint of im2col: scatter-add cols (columns colOff.., row stride ld) back onto the image. */
function col2im(cols: TypedArray, colOff: number, ld: number, channels: number, g: ConvGeometry, dx: TypedArray, dxOff: number): void {
  for (let c = 0; c < channels; c++) {
    for (let ki = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const row = ((c * g.KH + ki) * g.KW + kj) * ld + colOff;
        const { shift, lo, hi } = columnRange(g, kj);
        for (let oh = 0; oh < g.OH; oh++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          if (ih < 0 || ih >= g.H) continue;
          const dst = dxOff + (c * g.H + ih) * g.W + shift;
          const src = row + oh * g.OW;
          if (g.strideW === 1) for (let ow = lo; ow < hi; ow++) dx[dst + ow]! += cols[src + ow]!;
          else for (let ow = lo; ow < hi; ow++) dx[dst + ow * g.strideW]! += cols[src + ow]!;
        }
      }
    }
  }
}

/*
 * Ungrouped convolutions run one GEMM per chunk of images. The output, dY, and a 1x1 convolution's input
 * and dx are NCHW data used in place as [channels, images * pixels] matrices (imagesMat): the GEMM reads
 * and writes them plane by plane, so nothing is gathered or scattered. Only a KxK convolution's cols are
 * built, in scratch of at most MAX_COLS floats, which bounds its chunk. Grouped ones run image by image.
 */
const MAX_COLS = 1 << 22; // floats of cols per chunk (16 MB)

/**
 * Scratch matrices (cols and their gradient) are reused from call to call instead of allocated: they are
 * tens of MB for early layers, and fresh memory costs a page fault per 4 KB. Each slot only grows; nothing
 * outside this file sees them, and every user writes a slot fully before reading it.
 */
const scratchSlots = new Map<string, TypedArray>();
function scratch(slot: 'cols' | 'dcols', like: TypedArray, n: number): TypedArray {
  const key = `${slot}:${dtypeOf(like)}`;
  let buf = scratchSlots.get(key);
  if (!buf || buf.length < n) {
    buf = alloc(dtypeOf(like), n);
    scratchSlots.set(key, buf);
  }
  return buf;
}

function chunkSize(g: ConvGeometry, K: number): number {
  if (isPointwise(g)) return g.N;
  return Math.max(1, Math.min(g.N, Math.floor(MAX_COLS / Math.max(1, K * g.OH * g.OW))));
}

/** Images n0.. of NCHW data with `channels` planes of P values, as a [channels, images * P] matrix. */
const planes = (data: TypedArray, n0: number, channels: number, P: number): Matrix => imagesMat(data, n0 * channels * P, P, channels * P);

/** op(B) of a forward or filter-gradient GEMM: the cols of images n0..n0+nc, or a 1x1 input in place. */
function colsMatrix(x: TypedArray, g: ConvGeometry, n0: number, nc: number, K: number): Matrix {
  const P = g.OH * g.OW;
  if (isPointwise(g)) return planes(x, n0, g.C, P);
  const cols = scratch('cols', x, K * nc * P);
  for (let n = 0; n < nc; n++) im2col(x, (n0 + n) * g.C * g.H * g.W, g.C, g, cols, n * P, nc * P);
  return mat(cols, 0, nc * P);
}

export function conv2dForward(x: TypedArray, w: TypedArray, bias: TypedArray | null, g: ConvGeometry): TypedArray {
  const y = alloc(dtypeOf(x), g.N * g.O * g.OH * g.OW);
  const P = g.OH * g.OW;
  if (isDepthwise(g)) depthwiseForward(x, w, y, g);
  else if (g.groups === 1) {
    const K = g.C * g.KH * g.KW, chunk = chunkSize(g, K);
    for (let n0 = 0; n0 < g.N; n0 += chunk) {
      const nc = Math.min(chunk, g.N - n0);
      gemm(false, false, g.O, nc * P, K, mat(w, 0, K), colsMatrix(x, g, n0, nc, K), planes(y, n0, g.O, P), false);
    }
  } else {
    const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW;
    const cols = scratch('cols', x, K * P);
    for (let n = 0; n < g.N; n++) {
      for (let gi = 0; gi < g.groups; gi++) {
        im2col(x, (n * g.C + gi * Cg) * g.H * g.W, Cg, g, cols, 0, P);
        gemm(false, false, Og, P, K, mat(w, gi * Og * K, K), mat(cols, 0, P), mat(y, (n * g.O + gi * Og) * P, P), false);
      }
    }
  }
  if (bias) addBias(y, bias, g.N, g.O, P);
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

/**
 * dL/dx (the convolution's transpose applied to dy: Wᵀ·dY, then col2im) and dL/dW (sum over images of
 * dY·colsᵀ), each only when asked for. They run together so that each chunk's dY matrix is gathered once
 * for both GEMMs.
 */
export function conv2dBackward(dy: TypedArray, x: TypedArray, w: TypedArray, g: ConvGeometry, needInput: boolean, needFilter: boolean): [TypedArray | null, TypedArray | null] {
  const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW, P = g.OH * g.OW;
  const dx = needInput ? alloc(dtypeOf(dy), g.N * g.C * g.H * g.W) : null;
  const dw = needFilter ? alloc(dtypeOf(dy), g.O * K) : null;
  if (isDepthwise(g)) {
    if (dx) depthwiseBackwardInput(dy, w, dx, g);
    if (dw) depthwiseBackwardFilter(dy, x, dw, g);
  } else if (g.groups === 1) {
    const chunk = chunkSize(g, K);
    for (let n0 = 0; n0 < g.N; n0 += chunk) {
      const nc = Math.min(chunk, g.N - n0);
      const dyM = planes(dy, n0, g.O, P);
      if (dx) inputGradientChunk(dyM, w, g, n0, nc, K, dx);
      if (dw) gemm(false, true, g.O, K, nc * P, dyM, colsMatrix(x, g, n0, nc, K), mat(dw, 0, K), true);
    }
  } else {
    const cols = scratch('cols', x, K * P), dcols = scratch('dcols', dy, K * P);
    for (let n = 0; n < g.N; n++) {
      for (let gi = 0; gi < g.groups; gi++) {
        const dyG = mat(dy, (n * g.O + gi * Og) * P, P);
        if (dx) {
          gemm(true, false, K, P, Og, mat(w, gi * Og * K, K), dyG, mat(dcols, 0, P), false);
          col2im(dcols, 0, P, Cg, g, dx, (n * g.C + gi * Cg) * g.H * g.W);
        }
        if (dw) {
          im2col(x, (n * g.C + gi * Cg) * g.H * g.W, Cg, g, cols, 0, P);
          gemm(false, true, Og, K, P, dyG, mat(cols, 0, P), mat(dw, gi * Og * K, K), true);
        }
      }
    }
  }
  return [dx, dw];
}

/** dx of images n0..n0+nc of an ungrouped convolution, from their dY matrix. */
function inputGradientChunk(dyM: Matrix, w: TypedArray, g: ConvGeometry, n0: number, nc: number, K: number, dx: TypedArray): void {
  const P = g.OH * g.OW;
  if (isPointwise(g)) { // a 1x1 convolution's dcols are dx's planes
    gemm(true, false, K, nc * P, g.O, mat(w, 0, K), dyM, planes(dx, n0, g.C, P), false);
    return;
  }
  const dcols = scratch('dcols', dyM.data, K * nc * P);
  gemm(true, false, K, nc * P, g.O, mat(w, 0, K), dyM, mat(dcols, 0, nc * P), false);
  for (let n = 0; n < nc; n++) col2im(dcols, n * P, nc * P, g.C, g, dx, (n0 + n) * g.C * g.H * g.W);
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
 * plane. tapRows lists, for one image, every (output row, input row, tap) with the range of output columns
 * whose input column is inside the image, so the three kernels below are plain strided loops without
 * bounds checks (and without a callback per row, which V8 could not inline across three kernels).
 */
const TAP = 6; // [y row start, x row start, weight index, first ow, end ow, input column shift]

function tapRows(g: ConvGeometry): Int32Array {
  const M = g.O / g.C;
  const rows: number[] = [];
  for (let o = 0; o < g.O; o++) {
    const xPlane = Math.floor(o / M) * g.H * g.W, yPlane = o * g.OH * g.OW;
    for (let ki = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const { shift, lo: owLo, hi: owHi } = columnRange(g, kj);
        if (owHi <= owLo) continue;
        for (let oh = 0; oh < g.OH; oh++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          if (ih >= 0 && ih < g.H) rows.push(yPlane + oh * g.OW, xPlane + ih * g.W, (o * g.KH + ki) * g.KW + kj, owLo, owHi, shift);
        }
      }
    }
  }
  return Int32Array.from(rows);
}

function depthwiseForward(x: TypedArray, w: TypedArray, y: TypedArray, g: ConvGeometry): void {
  const rows = tapRows(g), sw = g.strideW;
  for (let n = 0; n < g.N; n++) {
    const yOff = n * g.O * g.OH * g.OW, xOff = n * g.C * g.H * g.W;
    for (let r = 0; r < rows.length; r += TAP) {
      const yRow = yOff + rows[r]!, wv = w[rows[r + 2]!]!, hi = rows[r + 4]!;
      for (let ow = rows[r + 3]!, xi = xOff + rows[r + 1]! + ow * sw + rows[r + 5]!; ow < hi; ow++, xi += sw) y[yRow + ow]! += wv * x[xi]!;
    }
  }
}

function depthwiseBackwardInput(dy: TypedArray, w: TypedArray, dx: TypedArray, g: ConvGeometry): void {
  const rows = tapRows(g), sw = g.strideW;
  for (let n = 0; n < g.N; n++) {
    const yOff = n * g.O * g.OH * g.OW, xOff = n * g.C * g.H * g.W;
    for (let r = 0; r < rows.length; r += TAP) {
      const yRow = yOff + rows[r]!, wv = w[rows[r + 2]!]!, hi = rows[r + 4]!;
      for (let ow = rows[r + 3]!, xi = xOff + rows[r + 1]! + ow * sw + rows[r + 5]!; ow < hi; ow++, xi += sw) dx[xi]! += wv * dy[yRow + ow]!;
    }
  }
}

function depthwiseBackwardFilter(dy: TypedArray, x: TypedArray, dw: TypedArray, g: ConvGeometry): void {
  const rows = tapRows(g), sw = g.strideW;
  for (let n = 0; n < g.N; n++) {
    const yOff = n * g.O * g.OH * g.OW, xOff = n * g.C * g.H * g.W;
    for (let r = 0; r < rows.length; r += TAP) {
      const yRow = yOff + rows[r]!, hi = rows[r + 4]!;
      let acc = 0;
      for (let ow = rows[r + 3]!, xi = xOff + rows[r + 1]! + ow * sw + rows[r + 5]!; ow < hi; ow++, xi += sw) acc += x[xi]! * dy[yRow + ow]!;
      dw[rows[r + 2]!]! += acc;
    }
  }
}
