/**
 * Multi-core GEMM with worker_threads and SharedArrayBuffer (Node only; browsers stay single-threaded:
 * worker_threads is reached through node_builtin.ts, so this module still loads there).
 * Every thread computes a disjoint block of C's columns with the same blocked kernel. The calling thread
 * copies into a shared buffer what the workers need: all of A, and each worker's columns of B (and of C
 * when accumulating), as stored (a transposed operand stays transposed, so each copy is a memcpy of
 * rows); it computes its own block on the operands in place, then copies the workers' blocks of C back.
 * Each element of C is summed in the same order whatever the thread count, so results are bit-identical
 * across thread counts. The caller blocks in Atomics.wait until all slices are done.
 */
import { builtin } from '../../util/node_builtin.js';
import { readBlock, writeBlock, type Matrix } from './gemm.js';
import { gemmBlocked, gemmKernel, type GemmKernel } from './gemm_fast.js';

/** Control words shared with the workers (Int32Array indices). */
export const CTRL = { SEQ: 0, DONE: 1, M: 2, N: 3, K: 4, RESIZE: 5, THREADS: 6, WASM: 7, TRANS_A: 8, TRANS_B: 9, ACCUMULATE: 10, SIZE: 11 } as const;

type Worker = InstanceType<typeof import('node:worker_threads').Worker>;
interface Pool { workers: Worker[]; ctrl: Int32Array; data: Float32Array; }

const workerThreads = builtin('node:worker_threads');
let pool: Pool | null = null;
let threads = workerThreads ? Math.max(1, Math.min(Number(process.env.FACENET_THREADS) || builtin('node:os')!.availableParallelism(), 8)) : 1;

/** Number of threads GEMMs use (1 = single-threaded). Defaults to FACENET_THREADS or the core count. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, got ${n}`);
  threads = workerThreads ? n : 1; // no worker threads here (a browser): one thread
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
      const w = new workerThreads!.Worker(new URL('./gemm_worker.js', import.meta.url), { workerData: { ctrl, index: i + 1 } });
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
  else readBlock(X, 0, rows, 0, cols, dst, at, cols);
}

/** Whether a product is worth the copies and the synchronization. */
export function useThreads(M: number, N: number, K: number, data: Matrix['data']): boolean {
  return threads > 1 && data instanceof Float32Array && M * N * K >= 1 << 18 && N >= 8 * threads;
}

/*
 * Shared buffer layout (floats), with `own` the caller's columns [0, own): A as stored, packed, at 0;
 * worker t's columns [j0, j1) of B at M*K + K*(j0-own) (a [K, j1-j0] block, or [j1-j0, K] rows when B is
 * transposed), and of C at M*K + K*(N-own) + M*(j0-own) ([M, j1-j0]).
 */
const sliceOfB = (M: number, K: number, j0: number, own: number): number => M * K + K * (j0 - own);
const sliceOfC = (M: number, N: number, K: number, j0: number, own: number): number => M * K + K * (N - own) + M * (j0 - own);

/** C (+)= op(A) op(B) on all threads. */
export function gemmThreaded(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  const T = threads, own = columnSlice(N, 0, T)[1]; // the pool has threads - 1 workers
  const p = ensurePool(M * K + (K + M) * (N - own));
  const d = p.data;
  copyRows(A, transA ? K : M, transA ? M : K, d, 0);
  for (let t = 1; t < T; t++) {
    const [j0, j1] = columnSlice(N, t, T), n = j1 - j0;
    if (n <= 0) continue;
    const b = sliceOfB(M, K, j0, own), c = sliceOfC(M, N, K, j0, own);
    if (transB) readBlock(B, j0, n, 0, K, d, b, K);
    else readBlock(B, 0, K, j0, n, d, b, n);
    if (accumulate) readBlock(C, 0, M, j0, n, d, c, n);
  }
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
  // The caller's block starts at column 0: the first `own` columns of the operands as they are.
  if (own > 0) gemmBlocked(transA, transB, M, own, K, A, B, C, accumulate, kernel);
  const started = Date.now();
  for (let done = Atomics.load(p.ctrl, CTRL.DONE); done < T - 1; done = Atomics.load(p.ctrl, CTRL.DONE)) {
    Atomics.wait(p.ctrl, CTRL.DONE, done, 1000);
    if (Date.now() - started > 120_000) {
      shutdownThreads();
      throw new Error('GEMM worker threads stopped answering; set FACENET_THREADS=1 to run single-threaded');
    }
  }
  Atomics.store(p.ctrl, CTRL.RESIZE, 0);
  for (let t = 1; t < T; t++) {
    const [j0, j1] = columnSlice(N, t, T), n = j1 - j0, c = sliceOfC(M, N, K, j0, own);
    if (n > 0) writeBlock(C, 0, M, j0, n, d, c, n);
  }
}

/** Worker t's share: columns [j0, j1) of C, from A and its slices of B and C in the shared buffer d. */
export function runSlice(d: Float32Array, transA: boolean, transB: boolean, accumulate: boolean, M: number, N: number, K: number, T: number, j0: number, j1: number, kernel: GemmKernel): void {
  const n = j1 - j0;
  if (n <= 0) return;
  const A = { data: d, offset: 0, ld: transA ? M : K };
  const own = columnSlice(N, 0, T)[1];
  const B = { data: d, offset: sliceOfB(M, K, j0, own), ld: transB ? K : n };
  const C = { data: d, offset: sliceOfC(M, N, K, j0, own), ld: n };
  gemmBlocked(transA, transB, M, n, K, A, B, C, accumulate, kernel);
}
