/**
 * Row-major GEMM on typed arrays: C[M,N] = op(A)[M,K] · op(B)[K,N] (+ C when accumulating).
 * op(X) is X or its transpose, so convolution's forward and both gradients share one routine.
 * Large products go to the packed, register-tiled kernel (gemm_fast.ts); small ones use the simple loops
 * below, whose innermost loop runs over contiguous memory. The simple loops are also the reference the
 * fast kernel is tested against.
 */
import type { TypedArray } from '../../tensor/tensor.js';
import { gemmBlocked } from './gemm_fast.js';
import { gemmThreaded, useThreads } from './threads.js';

export interface Matrix {
  data: TypedArray;
  offset: number;
  /** Row stride of the stored (untransposed) matrix. */
  ld: number;
}

export function mat(data: TypedArray, offset: number, ld: number): Matrix {
  return { data, offset, ld };
}

/** C[0:M, 0:N] = 0 (only the M x N block: C may be a window of a wider matrix). */
export function zeroMatrix(C: Matrix, M: number, N: number): void {
  for (let i = 0; i < M; i++) C.data.fill(0, C.offset + i * C.ld, C.offset + i * C.ld + N);
}

/** Below this many multiply-adds the simple loops beat packing. */
const BLOCKED_MIN_WORK = 32 * 32 * 32;

export function gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  if (useThreads(M, N, K, C.data)) return gemmThreaded(transA, transB, M, N, K, A, B, C, accumulate);
  if (M * N * K >= BLOCKED_MIN_WORK && M >= 4 && N >= 4) return gemmBlocked(transA, transB, M, N, K, A, B, C, accumulate);
  if (!accumulate) zeroMatrix(C, M, N);
  if (!transB) gemmRowsOfB(transA, M, N, K, A, B, C);
  else if (!transA) gemmDotRows(M, N, K, A, B, C);
  else gemmBothTransposed(M, N, K, A, B, C);
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
