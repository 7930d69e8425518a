/**
 * Cache-blocked, register-tiled GEMM for the CPU backend: C (+)= op(A) · op(B).
 * op(A) is packed into 4-row panels and op(B) into 4-column panels (k-major, contiguous), so the
 * 4x4 microkernel streams both with unit stride and keeps 16 accumulators in registers. Blocking K by
 * KC and N by NC keeps a B block in the L2 cache while every A panel sweeps over it. Transposed operands
 * cost nothing extra: packing reads them in whichever order they are stored.
 */
import type { TypedArray } from '../../tensor/tensor.js';
import { mapByEpilogue, withPlainOperands, zeroMatrix, type Matrix } from './gemm.js';
import { gemmWasm, wasmGemmAvailable, wasmGemmFused } from './wasm_gemm.js';

export type GemmKernel = 'wasm' | 'js';

/** float32 products use the WebAssembly SIMD kernel where it runs (FACENET_GEMM=js turns it off). */
let kernel: GemmKernel = globalThis.process?.env?.FACENET_GEMM === 'js' ? 'js' : 'wasm';

/** Chooses the kernel of float32 GEMMs: 'wasm' (default, where WebAssembly SIMD exists) or 'js'. */
export function setGemmKernel(k: GemmKernel): void {
  kernel = k;
}

/** The kernel float32 GEMMs use now. */
export function gemmKernel(): GemmKernel {
  return kernel === 'wasm' && wasmGemmAvailable() ? 'wasm' : 'js';
}

/**
 * Whether the WebAssembly kernel runs with fused multiply-adds (relaxed SIMD: Node 22+, current browsers;
 * FACENET_WASM_FMA=0 turns them off). Fused and unfused results differ by float32 rounding.
 */
export function gemmFused(): boolean {
  return gemmKernel() === 'wasm' && wasmGemmFused();
}

const MR = 4, NR = 4, KC = 256, NC = 512;

let packA: Float64Array = new Float64Array(0);
let packB: Float64Array = new Float64Array(0);

function ensure(buf: Float64Array, n: number): Float64Array {
  return buf.length >= n ? buf : new Float64Array(Math.max(n, buf.length * 2));
}

/** Packs rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into MR-row panels, zero-padding the last panel. */
function packPanelsA(A: Matrix, transA: boolean, i0: number, mc: number, k0: number, kc: number, out: Float64Array): void {
  const a = A.data, lda = A.ld, off = A.offset;
  let p = 0;
  for (let ib = 0; ib < mc; ib += MR) {
    for (let k = 0; k < kc; k++) {
      for (let ii = 0; ii < MR; ii++) {
        const i = i0 + ib + ii;
        out[p++] = ib + ii < mc ? (transA ? a[off + (k0 + k) * lda + i]! : a[off + i * lda + k0 + k]!) : 0;
      }
    }
  }
}

/** Packs rows [k0, k0+kc) x cols [j0, j0+nc) of op(B) into NR-column panels. */
function packPanelsB(B: Matrix, transB: boolean, k0: number, kc: number, j0: number, nc: number, out: Float64Array): void {
  const b = B.data, ldb = B.ld, off = B.offset;
  let p = 0;
  for (let jb = 0; jb < nc; jb += NR) {
    const full = jb + NR <= nc;
    for (let k = 0; k < kc; k++) {
      if (!transB && full) {
        const row = off + (k0 + k) * ldb + j0 + jb;
        out[p] = b[row]!; out[p + 1] = b[row + 1]!; out[p + 2] = b[row + 2]!; out[p + 3] = b[row + 3]!;
        p += 4;
        continue;
      }
      for (let jj = 0; jj < NR; jj++) {
        const j = j0 + jb + jj;
        out[p++] = jb + jj < nc ? (transB ? b[off + j * ldb + k0 + k]! : b[off + (k0 + k) * ldb + j]!) : 0;
      }
    }
  }
}

/** C[i0.., j0..] += packed A panels x packed B panels (mc x nc block, depth kc). */
function macroKernel(pa: Float64Array, pb: Float64Array, mc: number, nc: number, kc: number, c: TypedArray, cOff: number, ldc: number): void {
  for (let jb = 0; jb < nc; jb += NR) {
    const bBase = (jb / NR) * kc * NR;
    const nr = Math.min(NR, nc - jb);
    for (let ib = 0; ib < mc; ib += MR) {
      const aBase = (ib / MR) * kc * MR;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let k = 0, ap = aBase, bp = bBase; k < kc; k++, ap += 4, bp += 4) {
        const a0 = pa[ap]!, a1 = pa[ap + 1]!, a2 = pa[ap + 2]!, a3 = pa[ap + 3]!;
        const b0 = pb[bp]!, b1 = pb[bp + 1]!, b2 = pb[bp + 2]!, b3 = pb[bp + 3]!;
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      }
      const mr = Math.min(MR, mc - ib);
      const base = cOff + ib * ldc + jb;
      if (mr === MR && nr === NR) {
        c[base]! += c00; c[base + 1]! += c01; c[base + 2]! += c02; c[base + 3]! += c03;
        const b1 = base + ldc, b2 = b1 + ldc, b3 = b2 + ldc;
        c[b1]! += c10; c[b1 + 1]! += c11; c[b1 + 2]! += c12; c[b1 + 3]! += c13;
        c[b2]! += c20; c[b2 + 1]! += c21; c[b2 + 2]! += c22; c[b2 + 3]! += c23;
        c[b3]! += c30; c[b3 + 1]! += c31; c[b3 + 2]! += c32; c[b3 + 3]! += c33;
      } else {
        const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
        for (let ii = 0; ii < mr; ii++) for (let jj = 0; jj < nr; jj++) c[base + ii * ldc + jj]! += tile[ii * 4 + jj]!;
      }
    }
  }
}

/** C = op(A) · op(B), or C += op(A) · op(B) when accumulating. */
export function gemmBlocked(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean, use: GemmKernel = kernel): void {
  if (use === 'wasm' && gemmWasm(transA, transB, M, N, K, A, B, C, accumulate)) return;
  withPlainOperands(transA, transB, M, N, K, A, B, C, accumulate, (A, B, Cp) => {
    gemmPlain(transA, transB, M, N, K, A, B, Cp, accumulate);
    mapByEpilogue(Cp, M, N, C.epilogue);
  });
}

function gemmPlain(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  if (!accumulate) zeroMatrix(C, M, N);
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nc = Math.min(NC, N - j0);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = Math.min(KC, K - k0);
      packB = ensure(packB, Math.ceil(nc / NR) * NR * kc);
      packPanelsB(B, transB, k0, kc, j0, nc, packB);
      packA = ensure(packA, Math.ceil(M / MR) * MR * kc);
      packPanelsA(A, transA, 0, M, k0, kc, packA);
      macroKernel(packA, packB, M, nc, kc, C.data, C.offset + j0, C.ld);
    }
  }
}
