/**
 * Multi-core GEMM with worker_threads and SharedArrayBuffer (Node only; browsers stay single-threaded).
 * The calling thread copies A, B (as stored: a transposed operand stays transposed, so each copy is a
 * memcpy of rows) and C into a shared buffer, every thread (the caller included) computes a disjoint block
 * of C's columns with the same blocked kernel, and the caller copies C back.
 * Each element of C is summed in the same order whatever the thread count, so results are bit-identical
 * across thread counts. The caller blocks in Atomics.wait until all slices are done.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { readRow, writeRow, type Matrix } from './gemm.js';
import { gemmBlocked, gemmKernel, type GemmKernel } from './gemm_fast.js';

/** Control words shared with the workers (Int32Array indices). */
export const CTRL = { SEQ: 0, DONE: 1, M: 2, N: 3, K: 4, RESIZE: 5, THREADS: 6, WASM: 7, TRANS_A: 8, TRANS_B: 9, ACCUMULATE: 10, SIZE: 11 } as const;

interface Pool { workers: Worker[]; ctrl: Int32Array; data: Float32Array; }

let pool: Pool | null = null;
let threads = Math.max(1, Math.min(Number(process.env.FACENET_THREADS) || availableParallelism(), 8));

/** Number of threads GEMMs use (1 = single-threaded). Defaults to FACENET_THREADS or the core count. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, got ${n}`);
  threads = n;
  if (pool && pool.workers.length !== n - 1) shutdownThreads();
}

export function getNumThreads(): number {
  return threads;
}

export function shutdownThreads(): void {
  if (!pool) return;
  for (const w of pool.workers) void w.terminate();
  pool = null;
}

function ensurePool(floats: number): Pool {
  if (!pool) {
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL.SIZE * 4));
    const workers = Array.from({ length: threads - 1 }, (_, i) => {
      const w = new Worker(new URL('./gemm_worker.js', import.meta.url), { workerData: { ctrl, index: i + 1 } });
      w.unref();
      return w;
    });
    pool = { workers, ctrl, data: new Float32Array(0) };
  }
  if (pool.data.length < floats) {
    pool.data = new Float32Array(new SharedArrayBuffer(Math.max(floats, pool.data.length * 2) * 4));
    for (const w of pool.workers) w.postMessage(pool.data);
    // Tell the workers to pick the new buffer up (they read it with receiveMessageOnPort).
    Atomics.store(pool.ctrl, CTRL.RESIZE, 1);
  }
  return pool;
}

/** Columns [from, to) of C for thread t of T, aligned to the 8-wide microkernel. */
export function columnSlice(N: number, t: number, T: number): [number, number] {
  const chunk = Math.ceil(N / T / 8) * 8;
  return [Math.min(N, t * chunk), Math.min(N, (t + 1) * chunk)];
}

/** Copies the stored matrix X (rows x cols) into dst, packed (row stride cols). */
function copyRows(X: Matrix, rows: number, cols: number, dst: Float32Array, at: number): void {
  if (X.ld === cols && !X.images) dst.set(X.data.subarray(X.offset, X.offset + rows * cols), at);
  else for (let i = 0; i < rows; i++) readRow(X, i, 0, cols, dst, at + i * cols);
}

/** Whether a product is worth the copies and the synchronization. */
export function useThreads(M: number, N: number, K: number, data: Matrix['data']): boolean {
  return threads > 1 && data instanceof Float32Array && M * N * K >= 1 << 18 && N >= 8 * threads;
}

/** C (+)= op(A) op(B) on all threads. */
export function gemmThreaded(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  const p = ensurePool(M * K + K * N + M * N);
  const d = p.data;
  copyRows(A, transA ? K : M, transA ? M : K, d, 0);
  copyRows(B, transB ? N : K, transB ? K : N, d, M * K);
  const cAt = M * K + K * N;
  if (accumulate) copyRows(C, M, N, d, cAt);
  const T = p.workers.length + 1;
  Atomics.store(p.ctrl, CTRL.M, M);
  Atomics.store(p.ctrl, CTRL.N, N);
  Atomics.store(p.ctrl, CTRL.K, K);
  Atomics.store(p.ctrl, CTRL.THREADS, T);
  Atomics.store(p.ctrl, CTRL.TRANS_A, transA ? 1 : 0);
  Atomics.store(p.ctrl, CTRL.TRANS_B, transB ? 1 : 0);
  Atomics.store(p.ctrl, CTRL.ACCUMULATE, accumulate ? 1 : 0);
  const kernel = gemmKernel(); // every thread runs the caller's kernel, so results do not depend on T
  Atomics.store(p.ctrl, CTRL.WASM, kernel === 'wasm' ? 1 : 0);
  Atomics.store(p.ctrl, CTRL.DONE, 0);
  Atomics.add(p.ctrl, CTRL.SEQ, 1);
  Atomics.notify(p.ctrl, CTRL.SEQ);
  const [j0, j1] = columnSlice(N, 0, T);
  runSlice(d, transA, transB, accumulate, M, N, K, j0, j1, kernel);
  const started = Date.now();
  for (let done = Atomics.load(p.ctrl, CTRL.DONE); done < T - 1; done = Atomics.load(p.ctrl, CTRL.DONE)) {
    Atomics.wait(p.ctrl, CTRL.DONE, done, 1000);
    if (Date.now() - started > 120_000) {
      shutdownThreads();
      throw new Error('GEMM worker threads stopped answering; set FACENET_THREADS=1 to run single-threaded');
    }
  }
  Atomics.store(p.ctrl, CTRL.RESIZE, 0);
  for (let i = 0; i < M; i++) writeRow(C, i, 0, N, d, cAt + i * N);
}

/** One thread's share: columns [j0, j1) of the shared C (A, B and C packed one after another in d). */
export function runSlice(d: Float32Array, transA: boolean, transB: boolean, accumulate: boolean, M: number, N: number, K: number, j0: number, j1: number, kernel: GemmKernel): void {
  if (j1 <= j0) return;
  const A = { data: d, offset: 0, ld: transA ? M : K };
  // Column j of op(B) starts at B[0, j], or at row j of the stored B when it is transposed.
  const B = { data: d, offset: M * K + (transB ? j0 * K : j0), ld: transB ? K : N };
  const C = { data: d, offset: M * K + K * N + j0, ld: N };
  gemmBlocked(transA, transB, M, j1 - j0, K, A, B, C, accumulate, kernel);
}
