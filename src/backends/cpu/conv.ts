/**
 * 2-D convolution on CPU, NCHW input, [O, C/groups, KH, KW] filters.
 * General case: a GEMM with the cols matrix (im2col), computed block by block as the GEMM packs it and
 * never stored (see colsBlock); in backward, dx's cols come out of the GEMM block by block and are added
 * onto dx (col2im), except for stride-1 convolutions over planes too large for the tap map, whose dx is a
 * forward convolution of dy with the flipped filters. 1x1/stride-1/no-pad convolutions need no cols: the
 * input already is the [C, images*H*W] matrix. Depthwise (one input channel per group) runs direct: in
 * WebAssembly (wasm_depthwise.ts), else (float64, no SIMD) as loops here.
 */
import { alloc, allocUnfilled, type TypedArray, dtypeOf } from '../../tensor/tensor.js';
import { gemm, imagesMat, mat, type ColsSource, type Matrix, type ModuleRoom, type RowEpilogue } from './gemm.js';
import { affinePlanes, shiftedSums } from './wasm_planes.js';
import { depthwiseBackwardPlanes, depthwisePlanes, depthwiseRuns } from './wasm_depthwise.js';
import { colsInModule, type TapLayout } from './wasm_cols.js';
import type { AffineActivation } from './wasm_affine.js';
import { gemmKernel } from './gemm_fast.js';
import { MAX_THREADS } from './threads.js';

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
 * The cols matrix of a convolution: row (c*KH + ki)*KW + kj, column n*P + oh*OW + ow holds
 * x[n, c, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw] (0 outside the image), for images n of NCHW data
 * whose element (n, c, ih, iw) is at base + n*imageStride + (c*H + ih)*W + iw. It is KH*KW times larger
 * than the input, so it is never stored: the GEMM asks for the blocks it packs (im2col straight into its
 * staging buffer), and hands over the blocks of dcols it computes, which are added onto dx (col2im).
 * Blocks go through WebAssembly (wasm_cols.ts: by row runs, or through the tap map (see tapMap) where
 * output rows are short; 0.4-1.6 ns a value, copies included; in the GEMM kernel's memory, where the block
 * is, when the GEMM says where there is room; by row runs alone where the map would be large: a
 * detector's first layers on a photo), except where output rows are short and the map large; there, or
 * without WebAssembly, each block is walked row by row, and within a row by runs of one output row (one
 * oh of one image), or gathered through the map when those runs are short.
 */
function colsBlock(
  x: TypedArray, base: number, imageStride: number, g: ConvGeometry, layout: TapLayout | null,
  r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, addToImage: boolean, room?: ModuleRoom,
): void {
  if (layout && colsInModule(x, base, imageStride, layout, r0, rows, c0, cols, buf, at, ld, addToImage, room)) return;
  if (g.OW < GATHER_BELOW_OW) return colsBlockGather(x, base, imageStride, g, r0, rows, c0, cols, buf, at, ld, addToImage);
  if (!addToImage && g.strideW === 1 && x instanceof Float32Array && buf instanceof Float32Array) {
    const region = inputRegion(g, r0, rows, c0, cols);
    if (region.floats <= 8 * rows * cols) return colsBlockByCopies(x, base, imageStride, g, r0, rows, c0, cols, buf, at, ld, region);
  }
  colsBlockRuns(x, base, imageStride, g, r0, rows, c0, cols, buf, at, ld, addToImage);
}

/**
 * colsBlock by runs. When x and buf are the same array (colsBlockByCopies), stride-1 runs are native
 * copies (copyWithin); otherwise element loops.
 */
function colsBlockRuns(
  x: TypedArray, base: number, imageStride: number, g: ConvGeometry,
  r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, addToImage: boolean,
): void {
  const runs = outputRowRuns(g, c0, cols), taps = g.KH * g.KW, KW = g.KW, H = g.H, W = g.W, sw = g.strideW;
  const spans = columnSpans(g), native = x === buf && sw === 1;
  for (let r = 0; r < rows; r++) {
    const c = Math.floor((r0 + r) / taps), tap = r0 + r - c * taps, ki = Math.floor(tap / KW), kj = tap - ki * KW;
    const shift = spans[3 * kj]!, lo = spans[3 * kj + 1]!, hi = spans[3 * kj + 2]!;
    const ihShift = ki * g.dilationH - g.padTop, plane = base + c * H * W + shift;
    for (let k = 0, b = at + r * ld; k < runs.length; k += RUN) {
      const ow0 = runs[k + 2]!, ow1 = runs[k + 3]!, ih = runs[k + 1]! + ihShift, bRow = b - ow0;
      b += ow1 - ow0;
      const inside = ih >= 0 && ih < H;
      const a = inside ? (ow0 > lo ? ow0 : lo) : ow1, e = inside ? Math.max(a, ow1 < hi ? ow1 : hi) : ow1;
      const xRow = plane + runs[k]! * imageStride + ih * W;
      if (addToImage) {
        if (sw === 1) for (let ow = a; ow < e; ow++) x[xRow + ow]! += buf[bRow + ow]!;
        else for (let ow = a; ow < e; ow++) x[xRow + ow * sw]! += buf[bRow + ow]!;
        continue;
      }
      for (let ow = ow0; ow < a; ow++) buf[bRow + ow] = 0; // padding: a column or two, not worth a call
      if (native) { if (e > a) buf.copyWithin(bRow + a, xRow + a, xRow + e); }
      else if (sw === 1) for (let ow = a; ow < e; ow++) buf[bRow + ow] = x[xRow + ow]!;
      else for (let ow = a; ow < e; ow++) buf[bRow + ow] = x[xRow + ow * sw]!;
      for (let ow = e; ow < ow1; ow++) buf[bRow + ow] = 0;
    }
  }
}

/*
 * im2col of stride-1 rows by native copies: a JavaScript loop copying runs of a few dozen floats costs
 * ~2-3 ns a value here, copyWithin ~0.6. copyWithin needs source and destination in one array, so the
 * input planes the block reads (its channels, of its images) are first copied into a scratch array, the
 * block is assembled before them by colsBlockRuns, then copied out (rows of `cols` values: native copies).
 */
let copyScratch = new Float32Array(0);

/**
 * The input planes a block reads: its first image and channel, how many of each, and their floats. Large
 * planes (a detector's first layers on a photo) make this far larger than the block; those blocks take
 * the loop path, so the copy stays cheap and the scratch stays within 9 blocks.
 */
function inputRegion(g: ConvGeometry, r0: number, rows: number, c0: number, cols: number): { n0: number; images: number; c0: number; channels: number; floats: number } {
  const P = g.OH * g.OW, taps = g.KH * g.KW;
  const n0 = Math.floor(c0 / P), images = Math.floor((c0 + cols - 1) / P) - n0 + 1;
  const first = Math.floor(r0 / taps), channels = Math.floor((r0 + rows - 1) / taps) - first + 1;
  return { n0, images, c0: first, channels, floats: images * channels * g.H * g.W };
}

function colsBlockByCopies(
  x: Float32Array, base: number, imageStride: number, g: ConvGeometry,
  r0: number, rows: number, c0: number, cols: number, buf: Float32Array, at: number, ld: number,
  region: ReturnType<typeof inputRegion>,
): void {
  const plane = g.H * g.W, block = rows * cols, staged = region.channels * plane; // floats per staged image
  if (copyScratch.length < block + region.floats) copyScratch = new Float32Array(block + region.floats);
  const s = copyScratch; // [block][the region's images, each its channels' planes]
  for (let i = 0; i < region.images; i++) {
    const from = base + (region.n0 + i) * imageStride + region.c0 * plane;
    s.set(x.subarray(from, from + staged), block + i * staged);
  }
  // The staged region as NCHW images of `staged` floats: image n, channel c at the same offsets as in x.
  colsBlockRuns(s, block - region.n0 * staged - region.c0 * plane, staged, g, r0, rows, c0, cols, s, 0, cols, false);
  if (ld === cols) buf.set(s.subarray(0, block), at);
  else for (let r = 0; r < rows; r++) buf.set(s.subarray(r * cols, (r + 1) * cols), at + r * ld);
}

/** columnRange for every kernel column, as [shift, lo, hi] triples. */
function columnSpans(g: ConvGeometry): Int32Array {
  const spans = new Int32Array(3 * g.KW);
  for (let kj = 0; kj < g.KW; kj++) {
    const { shift, lo, hi } = columnRange(g, kj);
    spans.set([shift, lo, hi], 3 * kj);
  }
  return spans;
}

/*
 * The tap map: for tap t and output pixel q, the input's offset within its channel plane, or -1 for
 * padding (KH*KW*OH*OW ints). The WebAssembly gather takes every block through it when it has at most
 * MAP_MAX entries. In TypeScript, small output planes (late layers: 8x8, 3x3) make runs of a few values,
 * where the bookkeeping per run costs more than the copy: there each column is gathered through the map.
 */
const MAP_MAX = 1 << 18;
const GATHER_BELOW_OW = 16;

/** Int32 tables by key, built on first use; dropped all at once past 1 << 22 ints (photo sizes make new shapes: bounded). */
class TableCache {
  private tables = new Map<string, Int32Array>();
  private ints = 0;

  get(key: string, build: () => Int32Array): Int32Array {
    let table = this.tables.get(key);
    if (table) return table;
    table = build();
    if (this.ints + table.length > 1 << 22) { this.tables.clear(); this.ints = 0; }
    this.tables.set(key, table);
    this.ints += table.length;
    return table;
  }
}

const tapMaps = new TableCache();

/** What one image's tables (tap map, row runs) depend on: the geometry less batch size and channels. */
const planeKey = (g: ConvGeometry): string => [g.H, g.W, g.KH, g.KW, g.OH, g.OW, g.strideH, g.strideW, g.padTop, g.padLeft, g.dilationH, g.dilationW].join();

function tapMap(g: ConvGeometry): Int32Array {
  return tapMaps.get(planeKey(g), () => buildTapMap(g));
}

const hasTapMap = (g: ConvGeometry): boolean => g.KH * g.KW * g.OH * g.OW <= MAP_MAX;

/**
 * What the WebAssembly kernels need for a convolution's cols: the row runs where output rows are long
 * enough, the tap map where it is small enough (the gather's, and the bounds of what a block reads); null
 * where neither (output rows under RUNS_FROM_OW pixels and a map over MAP_MAX). Once per cols matrix.
 */
function tapLayout(g: ConvGeometry): TapLayout | null {
  const rowRuns = g.OW >= RUNS_FROM_OW ? { table: rowRunTable(g), OW: g.OW, stride: g.strideW } : null;
  if (!hasTapMap(g) && !rowRuns) return null;
  return { map: hasTapMap(g) ? tapMap(g) : null, taps: g.KH * g.KW, P: g.OH * g.OW, plane: g.H * g.W, rowRuns };
}

const rowRunTables = new TableCache();

/**
 * The WebAssembly kernels copy or add blocks run by run (an output row's pixels of one tap) where output rows
 * have at least this many pixels, else value by value through the tap map. Measured per value, copies in
 * and out included, over Inception-ResNet-v1's training step (map -> runs, im2col / col2im): 77-wide rows
 * 0.68 -> 0.42-0.45 ns / 0.8 -> 0.47-0.53; 17-wide 0.60 -> 0.50 / 0.84 -> 0.57-0.66; 17-wide at stride 2
 * 1.07 -> 0.72 / 1.90 -> 1.56; 8-wide 0.69 -> 0.72-0.84 / 1.29 -> 0.85-0.95; 3-wide 1.06 -> 1.68 / 1.44 -> 2.00.
 */
const RUNS_FROM_OW = 8;

/** [offset of the input for ow = 0 within its plane, first ow inside, end ow inside] for each tap and output row. */
function rowRunTable(g: ConvGeometry): Int32Array {
  return rowRunTables.get(planeKey(g), () => {
    const table = new Int32Array(g.KH * g.KW * g.OH * 3);
    for (let ki = 0, at = 0; ki < g.KH; ki++) {
      for (let kj = 0; kj < g.KW; kj++) {
        const { shift, lo, hi } = columnRange(g, kj);
        for (let oh = 0; oh < g.OH; oh++, at += 3) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH;
          if (ih >= 0 && ih < g.H) table.set([ih * g.W + shift, lo, hi], at);
        }
      }
    }
    return table;
  });
}

function buildTapMap(g: ConvGeometry): Int32Array {
  const P = g.OH * g.OW;
  const map = new Int32Array(g.KH * g.KW * P);
  for (let ki = 0; ki < g.KH; ki++) {
    for (let kj = 0; kj < g.KW; kj++) {
      for (let oh = 0; oh < g.OH; oh++) {
        for (let ow = 0; ow < g.OW; ow++) {
          const ih = oh * g.strideH - g.padTop + ki * g.dilationH, iw = ow * g.strideW - g.padLeft + kj * g.dilationW;
          map[(ki * g.KW + kj) * P + oh * g.OW + ow] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? ih * g.W + iw : -1;
        }
      }
    }
  }
  return map;
}

function colsBlockGather(
  x: TypedArray, base: number, imageStride: number, g: ConvGeometry,
  r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, addToImage: boolean,
): void {
  const map = tapMap(g), taps = g.KH * g.KW, P = g.OH * g.OW, n0 = Math.floor(c0 / P);
  for (let r = 0; r < rows; r++) {
    const c = Math.floor((r0 + r) / taps), m = (r0 + r - c * taps) * P;
    let src = base + n0 * imageStride + c * g.H * g.W, q = c0 - n0 * P;
    for (let j = 0, b = at + r * ld; j < cols; j++, b++) {
      const i = map[m + q]!;
      if (addToImage) { if (i >= 0) x[src + i]! += buf[b]!; } else buf[b] = i >= 0 ? x[src + i]! : 0;
      if (++q === P) { q = 0; src += imageStride; }
    }
  }
}

const RUN = 4; // [image, oh * strideH, first ow, end ow]
let runBuffer = new Int32Array(256);

/**
 * Columns [c0, c0 + cols) of a cols matrix as runs within one output row each (the same for every row of
 * the block, so worked out once per block). The buffer is reused: its contents last until the next call.
 */
function outputRowRuns(g: ConvGeometry, c0: number, cols: number): Int32Array {
  const P = g.OH * g.OW, maxRuns = Math.ceil(cols / g.OW) + 2;
  if (runBuffer.length < maxRuns * RUN) runBuffer = new Int32Array(maxRuns * RUN * 2);
  let n = Math.floor(c0 / P), oh = Math.floor((c0 - n * P) / g.OW), ow = c0 - n * P - oh * g.OW, k = 0;
  for (let left = cols; left > 0; k += RUN) {
    const end = Math.min(g.OW, ow + left);
    runBuffer[k] = n; runBuffer[k + 1] = oh * g.strideH; runBuffer[k + 2] = ow; runBuffer[k + 3] = end;
    left -= end - ow;
    ow = 0;
    if (++oh === g.OH) { oh = 0; n++; }
  }
  return runBuffer.subarray(0, k);
}

/**
 * The cols of `channels` input channels of `images` images at base.. (see colsBlock), computed as the GEMM
 * packs them. The matrix also says which floats of x it reads and how (ColsSource), so that the threaded
 * GEMM can hand its workers a copy of the input instead of their share of the cols.
 */
function colsOf(x: TypedArray, base: number, imageStride: number, g: ConvGeometry, images: number, channels: number): Matrix {
  return { ...producedCols(x, base, imageStride, g), cols: colsSource(x, base, imageStride, g, images, channels, false) };
}

/**
 * A dcols result whose blocks are added onto the images of dx at base.. as they are computed (col2im), with
 * the ColsSource of the dx it adds onto, so that the threaded GEMM's workers can add their columns' blocks
 * onto a copy of their images' dx.
 */
function dcolsOnto(dx: TypedArray, base: number, imageStride: number, g: ConvGeometry, images: number, channels: number): Matrix {
  return { ...consumedCols(dx, base, imageStride, g), cols: colsSource(dx, base, imageStride, g, images, channels, true) };
}

function colsSource(x: TypedArray, base: number, imageStride: number, g: ConvGeometry, images: number, channels: number, consumed: boolean): ColsSource {
  return {
    x, base, floats: (images - 1) * imageStride + channels * g.H * g.W, words: [imageStride, ...GEOMETRY_FIELDS.map((f) => g[f])],
    images, P: g.OH * g.OW, imageStride, channels, taps: g.KH * g.KW, plane: g.H * g.W,
    over: (y, at) => (consumed ? consumedCols : producedCols)(y, at, imageStride, g),
  };
}

function producedCols(x: TypedArray, base: number, imageStride: number, g: ConvGeometry): Matrix {
  const layout = tapLayout(g);
  return { data: alloc(dtypeOf(x), 0), offset: 0, ld: 0, produce: (r0, rows, c0, cols, buf, at, ld, room) => colsBlock(x, base, imageStride, g, layout, r0, rows, c0, cols, buf, at, ld, false, room) };
}

function consumedCols(dx: TypedArray, base: number, imageStride: number, g: ConvGeometry): Matrix {
  const layout = tapLayout(g);
  return { data: alloc(dtypeOf(dx), 0), offset: 0, ld: 0, consume: (r0, rows, c0, cols, buf, at, ld, room) => colsBlock(dx, base, imageStride, g, layout, r0, rows, c0, cols, buf, at, ld, true, room) };
}

const GEOMETRY_FIELDS = ['N', 'C', 'H', 'W', 'O', 'KH', 'KW', 'OH', 'OW', 'groups', 'strideH', 'strideW', 'padTop', 'padLeft', 'dilationH', 'dilationW'] as const;

/** A worker thread's cols (or dcols, when consumed) over the copy of the input (or dx) at x[base..], from a ColsSource's words. */
export function colsFromWords(x: TypedArray, base: number, words: ArrayLike<number>, consumed: boolean): Matrix {
  const g = Object.fromEntries(GEOMETRY_FIELDS.map((f, i) => [f, words[i + 1]!])) as unknown as ConvGeometry;
  return (consumed ? consumedCols : producedCols)(x, base, words[0]!, g);
}

/*
 * Ungrouped convolutions run one GEMM per chunk of images. The output, dY, and a 1x1 convolution's input
 * and dx are NCHW data used in place as [channels, images * pixels] matrices (imagesMat): the GEMM reads
 * and writes them plane by plane, so nothing is gathered or scattered; a KxK convolution's cols are
 * computed block by block as the GEMM packs them. Grouped ones run image by image and group by group.
 * For float32 under the WebAssembly kernel a chunk holds MIN_CHUNK_IMAGES images (or the whole batch)
 * whatever their cols' size, as those are computed block by block: the threaded GEMM can then give each of
 * up to 8 threads whole images of dx to add its dcols onto (col2im, see gemmThreaded). With one image a
 * chunk (a 299x299 input's first layers had), two threads shared each image, the caller did all the col2im
 * and the shared buffer held the workers' dcols: measured for dx of a 3x3 convolution over 16x32x149x149,
 * 277 ms on 2 threads against 235 on one, 193 with the batch as one chunk. Beyond that, and elsewhere (the
 * TypeScript kernel's thin products store their cols whole), a chunk's cols stay under MAX_COLS floats.
 * Chunks do not depend on the thread count, so neither do the filter gradient's sums.
 */
const MAX_COLS = 1 << 22, MIN_CHUNK_IMAGES = 2 * MAX_THREADS;

function chunkSize(g: ConvGeometry, K: number, x: TypedArray): number {
  if (isPointwise(g)) return g.N;
  const fitting = Math.floor(MAX_COLS / Math.max(1, K * g.OH * g.OW));
  const least = x instanceof Float32Array && gemmKernel() === 'wasm' ? MIN_CHUNK_IMAGES : 1;
  return Math.max(1, Math.min(g.N, Math.max(fitting, least)));
}

/** Images n0.. of NCHW data with `channels` planes of P values, as a [channels, images * P] matrix. */
const planes = (data: TypedArray, n0: number, channels: number, P: number): Matrix => imagesMat(data, n0 * channels * P, P, channels * P);

/** op(B) of a forward or filter-gradient GEMM: the cols of images n0..n0+nc, or a 1x1 input in place. */
function colsMatrix(x: TypedArray, g: ConvGeometry, n0: number, nc: number): Matrix {
  const P = g.OH * g.OW, imageSize = g.C * g.H * g.W;
  return isPointwise(g) ? planes(x, n0, g.C, P) : colsOf(x, n0 * imageSize, imageSize, g, nc, g.C);
}

/**
 * y = conv(x, w) (+ bias). With `epilogue` (ungrouped convolutions only), each output channel o is mapped
 * by its values at o as the GEMM stores it (its folded batchnorm and activation, see gemm.ts): no pass
 * over y after. A bias of a float32 convolution is such a map too (scale 1: x * 1 + b is x + b, the same
 * bits as adding it in a pass).
 */
export function conv2dForward(x: TypedArray, w: TypedArray, bias: TypedArray | null, g: ConvGeometry, epilogue?: RowEpilogue): TypedArray {
  if (epilogue && (bias || g.groups !== 1)) throw new Error('conv2dForward: an epilogue is for an ungrouped convolution without a bias (fold the bias into its shift)');
  const y = allocUnfilled(dtypeOf(x), g.N * g.O * g.OH * g.OW); // the GEMMs and depthwiseForward write every value
  const P = g.OH * g.OW;
  if (isDepthwise(g)) depthwiseForward(x, w, y, g);
  else if (g.groups === 1) {
    const K = g.C * g.KH * g.KW, chunk = chunkSize(g, K, x);
    if (bias instanceof Float32Array && y instanceof Float32Array) {
      epilogue = { scale: new Float32Array(g.O).fill(1), shift: bias, activation: 'none' };
      bias = null;
    }
    for (let n0 = 0; n0 < g.N; n0 += chunk) {
      const nc = Math.min(chunk, g.N - n0);
      gemm(false, false, g.O, nc * P, K, mat(w, 0, K), colsMatrix(x, g, n0, nc), { ...planes(y, n0, g.O, P), epilogue }, false);
    }
  } else {
    const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW;
    for (let n = 0; n < g.N; n++) {
      for (let gi = 0; gi < g.groups; gi++) {
        const cols = colsOf(x, (n * g.C + gi * Cg) * g.H * g.W, 0, g, 1, Cg);
        gemm(false, false, Og, P, K, mat(w, gi * Og * K, K), cols, mat(y, (n * g.O + gi * Og) * P, P), false);
      }
    }
  }
  if (bias) addBias(y, bias, g.N, g.O, P);
  return y;
}

/**
 * Inference: a convolution with its folded scale and shift and its activation (ReLU, or PReLU slopes)
 * applied as each output is stored (a depthwise convolution's output vectors, the GEMM's output tile), so
 * no pass over y follows; null where no such path runs (float64, grouped, a depthwise convolution without
 * WebAssembly): the caller applies them after the convolution.
 */
export function convScaleShift(
  x: TypedArray, w: TypedArray, g: ConvGeometry, scale: ArrayLike<number>, shift: ArrayLike<number>, act: boolean | ArrayLike<number>,
): TypedArray | null {
  const slopes = typeof act === 'boolean' ? undefined : act;
  const activation: AffineActivation = slopes ? 'prelu' : act ? 'relu' : 'none';
  if (isDepthwise(g)) {
    if (!depthwiseRuns(g, x, w)) return null;
    const y = allocUnfilled(dtypeOf(x), g.N * g.O * g.OH * g.OW);
    return depthwisePlanes(x, w, y, g, { scale, shift, activation, slopes }) ? y : null;
  }
  if (g.groups !== 1 || !(x instanceof Float32Array) || !(w instanceof Float32Array)) return null;
  const f32 = (a: ArrayLike<number> | undefined): Float32Array | undefined => (a === undefined || a instanceof Float32Array ? a : Float32Array.from(a));
  return conv2dForward(x, w, null, g, { scale: f32(scale)!, shift: f32(shift)!, activation, slopes: f32(slopes) });
}

function addBias(y: TypedArray, bias: TypedArray, N: number, O: number, P: number): void {
  if (affinePlanes(y, y, N, O, P, new Float32Array(O).fill(1), bias, false)) return;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const b = bias[o]!, off = (n * O + o) * P;
      for (let p = 0; p < P; p++) y[off + p]! += b;
    }
  }
}

/**
 * dL/dx (the convolution's transpose applied to dy: Wᵀ·dY, then col2im, or for some stride-1 convolutions
 * a forward convolution of dy, see transposedGeometry) and dL/dW (sum over images of dY·colsᵀ), each only
 * when asked for. With `dxOnto` (x's gradient so far), dx is added onto it and returned as it, except on
 * the transposed path (a new array).
 */
export function conv2dBackward(
  dy: TypedArray, x: TypedArray, w: TypedArray, g: ConvGeometry, needInput: boolean, needFilter: boolean, dxOnto?: TypedArray,
): [TypedArray | null, TypedArray | null] {
  const Cg = g.C / g.groups, Og = g.O / g.groups, K = Cg * g.KH * g.KW, P = g.OH * g.OW;
  const transposed = needInput ? transposedGeometry(g) : null;
  // Arrays written in full come unfilled: a 1x1 convolution's dx, and dw (its first chunk, image or group
  // overwrites), and both of a depthwise convolution in WebAssembly. col2im and the depthwise loops add into theirs.
  const depthwiseInWasm = isDepthwise(g) && depthwiseRuns(g, x, w, dy);
  const dxUnfilled = (isPointwise(g) && g.groups === 1) || depthwiseInWasm, dwUnfilled = !isDepthwise(g) || depthwiseInWasm;
  const onto = needInput && !transposed && dxOnto !== undefined;
  const dx = transposed ? conv2dForward(dy, flippedFilters(w, g), null, transposed) : onto ? dxOnto! : needInput ? (dxUnfilled ? allocUnfilled : alloc)(dtypeOf(dy), g.N * g.C * g.H * g.W) : null;
  const dxByCol2im = needInput && !transposed;
  const dw = needFilter ? (dwUnfilled ? allocUnfilled : alloc)(dtypeOf(dy), g.O * K) : null;
  if (depthwiseInWasm) depthwiseBackwardPlanes(x, w, dy, dx, dw, g, onto);
  else if (isDepthwise(g)) {
    if (dx) depthwiseBackwardInput(dy, w, dx, g);
    if (dw) depthwiseBackwardFilter(dy, x, dw, g);
  } else if (g.groups === 1) {
    const chunk = chunkSize(g, K, dy);
    for (let n0 = 0; n0 < g.N; n0 += chunk) {
      const nc = Math.min(chunk, g.N - n0);
      const dyM = planes(dy, n0, g.O, P);
      if (dxByCol2im) inputGradientChunk(dyM, w, g, n0, nc, K, dx!, onto);
      if (dw) gemm(false, true, g.O, K, nc * P, dyM, colsMatrix(x, g, n0, nc), mat(dw, 0, K), n0 > 0); // the first chunk overwrites: nothing to read back
    }
  } else {
    for (let n = 0; n < g.N; n++) {
      for (let gi = 0; gi < g.groups; gi++) {
        const dyG = mat(dy, (n * g.O + gi * Og) * P, P), xAt = (n * g.C + gi * Cg) * g.H * g.W;
        if (dx) gemm(true, false, K, P, Og, mat(w, gi * Og * K, K), dyG, dcolsOnto(dx, xAt, 0, g, 1, Cg), false);
        if (dw) gemm(false, true, Og, K, P, dyG, colsOf(x, xAt, 0, g, 1, Cg), mat(dw, gi * Og * K, K), n > 0);
      }
    }
  }
  return [dx, dw];
}

/*
 * For a stride-1, undilated, ungrouped KxK convolution, dL/dx is itself a convolution: of dy, with the
 * filters turned 180 degrees and their input/output channels swapped, padded by K-1-pad on each side
 * (a "full" correlation). Its GEMM has only C rows and gathers O*KH*KW rows of cols; col2im's has
 * C*KH*KW rows and reads dY in place, and with the tap map its scatter-add (WebAssembly) costs about what
 * a gather does: measured per layer, col2im's dx took 12% less time over nn4.small2's stride-1
 * convolutions, 10% less over Inception-ResNet-v1's, 1-5% less over the ResNet-34's. So the transposed
 * convolution runs only where there is no tap map (more than MAP_MAX taps * output pixels): there its
 * im2col is built by native copies, where col2im would add element by element in JavaScript. (Without
 * WebAssembly, col2im adds in JavaScript everywhere; the measurements are of the WebAssembly path.)
 */
function transposedGeometry(g: ConvGeometry): ConvGeometry | null {
  const plain = g.groups === 1 && g.strideH === 1 && g.strideW === 1 && g.dilationH === 1 && g.dilationW === 1;
  if (!plain || isPointwise(g) || g.padTop > g.KH - 1 || g.padLeft > g.KW - 1 || hasTapMap(g)) return null;
  return {
    N: g.N, C: g.O, H: g.OH, W: g.OW, O: g.C, KH: g.KH, KW: g.KW, OH: g.H, OW: g.W, groups: 1,
    strideH: 1, strideW: 1, padTop: g.KH - 1 - g.padTop, padLeft: g.KW - 1 - g.padLeft, dilationH: 1, dilationW: 1,
  };
}

/** w'[c, o, i, j] = w[o, c, KH-1-i, KW-1-j]. */
function flippedFilters(w: TypedArray, g: ConvGeometry): TypedArray {
  const out = alloc(dtypeOf(w), w.length), taps = g.KH * g.KW;
  for (let o = 0; o < g.O; o++) {
    for (let c = 0; c < g.C; c++) {
      for (let t = 0; t < taps; t++) out[(c * g.O + o) * taps + taps - 1 - t] = w[(o * g.C + c) * taps + t]!;
    }
  }
  return out;
}

/** dx of images n0..n0+nc of an ungrouped convolution, from their dY matrix (added onto dx's values with `onto`; col2im always adds). */
function inputGradientChunk(dyM: Matrix, w: TypedArray, g: ConvGeometry, n0: number, nc: number, K: number, dx: TypedArray, onto: boolean): void {
  const P = g.OH * g.OW;
  if (isPointwise(g)) { // a 1x1 convolution's dcols are dx's planes
    gemm(true, false, K, nc * P, g.O, mat(w, 0, K), dyM, planes(dx, n0, g.C, P), onto);
    return;
  }
  const imageSize = g.C * g.H * g.W;
  gemm(true, false, K, nc * P, g.O, mat(w, 0, K), dyM, dcolsOnto(dx, n0 * imageSize, imageSize, g, nc, g.C), false);
}

export function conv2dBackwardBias(dy: TypedArray, g: ConvGeometry): TypedArray {
  const db = alloc(dtypeOf(dy), g.O);
  const P = g.OH * g.OW;
  const sums = shiftedSums(dy, g.N, g.O, P, new Float32Array(g.O));
  if (sums) {
    db.set(sums.s1);
    return db;
  }
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
 * bounds checks (and without a callback per row, which V8 could not inline across three kernels). They
 * run only where the WebAssembly kernels do not (float64, no SIMD).
 */
const TAP = 6; // [y row start, x row start, weight index, first ow, end ow, input column shift]

const tapRowCache = new TableCache();

function tapRows(g: ConvGeometry): Int32Array {
  // The table is per image: the batch size is not part of its key.
  return tapRowCache.get(GEOMETRY_FIELDS.filter((f) => f !== 'N').map((f) => g[f]).join(), () => buildTapRows(g));
}

function buildTapRows(g: ConvGeometry): Int32Array {
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
  if (depthwisePlanes(x, w, y, g)) return;
  const rows = tapRows(g), sw = g.strideW;
  y.fill(0); // the taps add onto it
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
