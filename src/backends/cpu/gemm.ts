/**
 * Row-major GEMM on typed arrays: C[M,N] = op(A)[M,K] · op(B)[K,N] (+ C when accumulating).
 * op(X) is X or its transpose, so convolution's forward and both gradients share one routine.
 * Large products go to the packed, register-tiled kernel (gemm_fast.ts); small ones use the simple loops
 * below, whose innermost loop runs over contiguous memory. The simple loops are also the reference the
 * fast kernel is tested against.
 */
import type { TypedArray } from '../../tensor/tensor.js';
import { gemmBlocked, gemmKernel } from './gemm_fast.js';
import type { WasmMemory } from './wasm_writer.js';
import { affineRowsInPlace, type Epilogue } from './wasm_affine.js';
import { gemmThreaded, useThreads } from './threads.js';

export interface Matrix {
  data: TypedArray;
  offset: number;
  /** Row stride of the stored (untransposed) matrix. */
  ld: number;
  /**
   * Set when the stored matrix's columns are images side by side that lie apart in memory: column c is
   * at offset + floor(c / P) * stride + (c % P). This is a convolution's [channels, images * pixels] view
   * of NCHW data, used in place instead of gathered into a matrix first.
   */
  images?: { P: number; stride: number };
  /** Set for a matrix that is never stored (a convolution's cols): blocks are computed when copied. */
  produce?: BlockCopy;
  /** Set on a produced convolution's cols: what it reads, so worker threads can compute their share themselves. */
  cols?: ColsSource;
  /** Set for a result that is never stored (a convolution's dcols): each finished block is handed over. */
  consume?: BlockCopy;
  /**
   * For a consumed result that is columns [consumedFrom, ..) of a larger one (a thread's share): its blocks
   * end where the larger result's do (see blockEnd). 0 when absent.
   */
  consumedFrom?: number;
  /**
   * Set on a result (never accumulated into, never consumed) whose stored row r is to be mapped by the
   * epilogue's values at r once final: a convolution's output channel r, with its folded batchnorm or bias
   * and activation. The WebAssembly kernel maps each block in its memory before writing it out (no pass
   * over the output after); the other kernels map the result in TypeScript, with the same float32 roundings.
   */
  epilogue?: RowEpilogue;
}

/** An Epilogue with float32 tables (subarrays for a window of rows, see epilogueFromRow). */
export interface RowEpilogue extends Epilogue { scale: Float32Array; shift: Float32Array; slopes?: Float32Array }

/** The epilogue of rows r.. of a matrix whose row 0 has `ep`'s values at 0. */
export function epilogueFromRow(ep: RowEpilogue | undefined, r: number): RowEpilogue | undefined {
  if (!ep || r === 0) return ep;
  return { ...ep, scale: ep.scale.subarray(r), shift: ep.shift.subarray(r), slopes: ep.slopes?.subarray(r) };
}

/**
 * The input a cols matrix reads (or the dx a consumed dcols matrix adds onto), floats [base, base + floats)
 * of x, and `words`, opaque to the GEMM, from which conv.ts rebuilds the same matrix over a copy of those
 * floats in a worker thread (`over` does it in this one). words[0] is `imageStride`: a copy may lay the
 * images out closer. Its columns are `images` images of `P` columns each, lying `imageStride` floats apart:
 * columns from image n on touch only x[base + n * imageStride ..]. Its rows are `channels` channels of
 * `taps` rows, each channel `plane` floats of its image: rows from channel c on touch only the floats
 * from c * plane on of each image.
 */
export interface ColsSource {
  x: TypedArray; base: number; floats: number; words: number[];
  images: number; P: number; imageStride: number; channels: number; taps: number; plane: number;
  over: (x: Float32Array, base: number) => Matrix;
}

/**
 * Copies the stored block rows [r0, r0+rows) x columns [c0, c0+cols) to or from buf[at + r*ld + c]. `room`,
 * when given, says buf is a view of a WebAssembly module's memory (the GEMM kernel's) with bytes from
 * room.from on free for the call: a produced or consumed block can then be computed there in place.
 */
export type BlockCopy = (r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, room?: ModuleRoom) => void;

/**
 * Free memory beside a block in a module's memory: bytes [from, ..) of `memory` are the callee's while the
 * call lasts, and it may grow the memory (the caller renews its views after).
 */
export interface ModuleRoom { memory: WasmMemory; from: number }

export function mat(data: TypedArray, offset: number, ld: number): Matrix {
  return { data, offset, ld };
}

/** The [rows, images * P] view of images of `stride` values each, whose rows are planes of P values. */
export function imagesMat(data: TypedArray, offset: number, P: number, stride: number): Matrix {
  return { data, offset, ld: P, images: { P, stride } };
}

/**
 * Copies the block of stored rows [r0, r0 + rows) x columns [c0, c0 + cols) of X to (toX = true) or from
 * a plain buffer at buf[at..] with row stride ld. An images view is walked image by image: within one
 * image the block's rows are consecutive planes, so reads stay sequential (row by row across images
 * would touch a new cache line every P values; late layers have 8x8 or 3x3 planes). Short runs are
 * copied element by element, as a subarray per run would cost more than the copy.
 */
function copyBlock(X: Matrix, r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, toX: boolean): void {
  if (!X.images && cols === X.ld && cols === ld) { // whole rows on both sides (a filter gradient's C): one run
    const from = X.offset + r0 * X.ld, n = rows * cols;
    if (toX) X.data.set(buf.subarray(at, at + n), from);
    else buf.set(X.data.subarray(from, from + n), at);
    return;
  }
  const x = X.data, P = X.images ? X.images.P : c0 + cols, stride = X.images ? X.images.stride : 0;
  const n = Math.floor(c0 / P);
  let p = c0 - n * P, base = X.offset + n * stride + r0 * X.ld + p, bi = at;
  for (let left = cols; left > 0;) {
    const length = Math.min(P - p, left);
    for (let r = 0; r < rows; r++) {
      const xi = base + r * X.ld, b = bi + r * ld;
      if (length >= 64) {
        if (toX) x.set(buf.subarray(b, b + length), xi);
        else buf.set(x.subarray(xi, xi + length), b);
      } else if (toX) {
        for (let i = 0; i < length; i++) x[xi + i] = buf[b + i]!;
      } else {
        for (let i = 0; i < length; i++) buf[b + i] = x[xi + i]!;
      }
    }
    left -= length;
    bi += length;
    base += stride - p; // the next image's block starts at its column 0
    p = 0;
  }
}

/** buf[at + r*ld + c] = X[r0 + r, c0 + c] (stored) for the rows x cols block. */
export function readBlock(X: Matrix, r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, room?: ModuleRoom): void {
  if (X.produce) X.produce(r0, rows, c0, cols, buf, at, ld, room);
  else copyBlock(X, r0, rows, c0, cols, buf, at, ld, false);
}

/** X[r0 + r, c0 + c] (stored) = buf[at + r*ld + c] for the rows x cols block (each block once, final values). */
export function writeBlock(X: Matrix, r0: number, rows: number, c0: number, cols: number, buf: TypedArray, at: number, ld: number, room?: ModuleRoom): void {
  if (X.consume) X.consume(r0, rows, c0, cols, buf, at, ld, room);
  else copyBlock(X, r0, rows, c0, cols, buf, at, ld, true);
}

/**
 * A consumed result (dcols, added onto dx by col2im) is handed over in blocks of this many columns, in
 * order, by both kernels and on any number of threads: col2im adds overlapping blocks onto the same dx
 * elements, so the same blocks in the same order give bit-identical sums. A thread's share of the columns
 * cuts its blocks at the same columns (consumedFrom).
 */
export const CONSUMED_BLOCK = 512;

/** Where the block of columns starting at column j of X's N ends: j + `width`, or for a consumed X the next multiple of CONSUMED_BLOCK in the whole result. */
export function blockEnd(X: Matrix, j: number, N: number, width: number): number {
  if (!X.consume) return Math.min(N, j + width);
  const first = X.consumedFrom ?? 0;
  return Math.min(N, (Math.floor((j + first) / CONSUMED_BLOCK) + 1) * CONSUMED_BLOCK - first);
}

/** writeBlock of columns [0, N), held at buf[at + j] for column j, in the blocks of blockEnd when X is consumed. */
export function writeColumns(X: Matrix, M: number, N: number, buf: TypedArray, at: number, ld: number): void {
  for (let j = 0; j < N; j = blockEnd(X, j, N, N)) writeBlock(X, 0, M, j, blockEnd(X, j, N, N) - j, buf, at + j, ld);
}

/**
 * Runs a GEMM that indexes its operands directly (the TypeScript kernels) on plain copies of any images
 * views, then writes C back. Plain matrices pass through untouched.
 */
export function withPlainOperands(
  transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean,
  run: (A: Matrix, B: Matrix, C: Matrix) => void,
): void {
  const plain = (X: Matrix, rows: number, cols: number, copy: boolean): Matrix => {
    if (!X.images && !X.produce && !X.consume) return X;
    const data = new (X.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(rows * cols);
    if (copy) readBlock(X, 0, rows, 0, cols, data, 0, cols);
    return mat(data, 0, cols);
  };
  const c = plain(C, M, N, accumulate);
  run(plain(A, transA ? K : M, transA ? M : K, true), plain(B, transB ? N : K, transB ? K : N, true), c);
  if (c !== C) writeColumns(C, M, N, c.data, 0, N);
}

/** C[0:M, 0:N] = 0 (only the M x N block: C may be a window of a wider matrix). */
export function zeroMatrix(C: Matrix, M: number, N: number): void {
  if (C.consume) return C.consume(0, M, 0, N, new (C.data.constructor as Float32ArrayConstructor)(M * N), 0, N);
  const P = C.images ? C.images.P : N, stride = C.images ? C.images.stride : 0;
  for (let i = 0; i < M; i++) {
    for (let c = 0; c < N; c += P) {
      const at = C.offset + (c / P) * stride + i * C.ld;
      C.data.fill(0, at, at + Math.min(P, N - c));
    }
  }
}

/** Below this many multiply-adds the simple loops beat packing. */
const BLOCKED_MIN_WORK = 32 * 32 * 32;

export function gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  if (C.consume && accumulate) throw new Error('gemm: a consumed result cannot be accumulated into (it is never stored)');
  if (C.epilogue && (accumulate || C.consume)) throw new Error('gemm: an epilogue maps a result it computes whole (not accumulated into, not consumed)');
  if (useThreads(M, N, K, C.data)) return gemmThreaded(transA, transB, M, N, K, A, B, C, accumulate);
  // The WebAssembly kernel pads thin products (a convolution over a 1x1 output, a dense layer at batch 1)
  // to its tile and still beats the loops below by far; the TypeScript kernel needs a few rows and columns.
  if (M * N * K >= BLOCKED_MIN_WORK && ((M >= 4 && N >= 4) || gemmKernel() === 'wasm')) return gemmBlocked(transA, transB, M, N, K, A, B, C, accumulate);
  withPlainOperands(transA, transB, M, N, K, A, B, C, accumulate, (A, B, Cp) => {
    if (!accumulate) zeroMatrix(Cp, M, N);
    if (!transB) gemmRowsOfB(transA, M, N, K, A, B, Cp);
    else if (!transA) gemmDotRows(M, N, K, A, B, Cp);
    else gemmBothTransposed(M, N, K, A, B, Cp);
    mapByEpilogue(Cp, M, N, C.epilogue);
  });
}

/** Maps the final values of a plain C by `ep`, if any (the kernels that write C directly). */
export function mapByEpilogue(C: Matrix, M: number, N: number, ep: RowEpilogue | undefined): void {
  if (ep) affineRowsInPlace(C.data, C.offset, C.ld, M, N, ep);
}

/** C += op(A) · B: for each (i, k), add A[i,k] times row k of B into row i of C (axpy on contiguous rows). */
function gemmRowsOfB(transA: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix): void {
  const a = A.data, b = B.data, c = C.data;
  // A[i,k] lives at i*lda+k, or k*lda+i when A is stored transposed.
  const aRow = transA ? 1 : A.ld;
  const aCol = transA ? A.ld : 1;
  for (let i = 0; i < M; i++) {
    const cRow = C.offset + i * C.ld;
    for (let k = 0; k < K; k++) {
      const aik = a[A.offset + i * aRow + k * aCol]!;
      if (aik === 0) continue;
      const bRow = B.offset + k * B.ld;
      for (let j = 0; j < N; j++) c[cRow + j]! += aik * b[bRow + j]!;
    }
  }
}

/** C += A · Bᵀ with B stored [N, K]: each entry is a dot product of two contiguous rows. */
function gemmDotRows(M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix): void {
  const a = A.data, b = B.data, c = C.data;
  for (let i = 0; i < M; i++) {
    const aRow = A.offset + i * A.ld;
    for (let j = 0; j < N; j++) {
      const bRow = B.offset + j * B.ld;
      let s = 0;
      for (let k = 0; k < K; k++) s += a[aRow + k]! * b[bRow + k]!;
      c[C.offset + i * C.ld + j]! += s;
    }
  }
}

function gemmBothTransposed(M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix): void {
  const a = A.data, b = B.data, c = C.data;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[A.offset + k * A.ld + i]! * b[B.offset + j * B.ld + k]!;
      c[C.offset + i * C.ld + j]! += s;
    }
  }
}
