/**
 * Multi-core GEMM with worker_threads and SharedArrayBuffer (Node only; browsers stay single-threaded:
 * worker_threads is reached through node_builtin.ts, so this module still loads there).
 * Every thread computes a disjoint block of C's columns (or of its rows, when op(A) is the larger operand)
 * with the same blocked kernel. The calling thread copies into a shared buffer what the workers need (see
 * OPERAND below: plain rows, images views as they are, or a convolution's input from which each worker
 * computes its own share of the cols); it computes its own block on the operands in place, then copies
 * the workers' blocks of C back. A consumed C (dcols, added onto dx by col2im) whose threads' columns start
 * at images is added by each thread onto its own images' dx as it is computed (a worker's onto a copy of
 * them in the shared buffer, copied back); otherwise the caller adds it all at the end. Each element of C
 * is summed in the same order whatever the thread count, and a consumed C is handed over in the same
 * blocks, so results are bit-identical across thread counts. The caller blocks in Atomics.wait until all
 * slices are done. Small products stay on one thread (see useThreads).
 */
import { builtin } from '../../util/node_builtin.js';
import { CONSUMED_BLOCK, epilogueFromRow, imagesMat, mat, readBlock, writeBlock, writeColumns, type Matrix, type RowEpilogue } from './gemm.js';
import { gemmBlocked, gemmKernel } from './gemm_fast.js';
import { writeImages } from './wasm_gemm.js';
import { AFFINE_ACTIVATIONS } from './wasm_affine.js';

/** Control words shared with the workers (Int32Array indices). */
export const CTRL = { SEQ: 0, DONE: 1, M: 2, N: 3, K: 4, THREADS: 5, WASM: 6, TRANS_A: 7, TRANS_B: 8, ACCUMULATE: 9, C_AT: 10, ALIGN: 11, BY_ROWS: 12, CONSUME: 13, KIND: 14, C_IN_PLACE: 15, FAILED: 16, CLAIM: 17, EPILOGUE: 25, EPILOGUE_AT: 26, SIZE: 27 } as const; // CLAIM: a word per thread
/** CTRL.KIND: what the job is. */
export const GEMM_JOB = 0, PASS_JOB = 1;

type Worker = InstanceType<typeof import('node:worker_threads').Worker>;
/**
 * `buffers`: the SharedArrayBuffers of tensors' arrays these workers have been posted, by id (see bufferId);
 * `errors`: a port per worker on which it reports an exception (read synchronously: the caller is blocked).
 */
interface Pool { workers: Worker[]; errors: MessagePort[]; ctrl: Int32Array; operands: Int32Array; data: Float32Array; buffers: WeakMap<SharedArrayBuffer, number> }
type MessagePort = InstanceType<typeof import('node:worker_threads').MessagePort>;
/** What the main thread posts to a worker: the newest shared buffer, a tensor array's buffer, or a buffer to let go of. */
export type WorkerMessage = { data: Float32Array } | { id: number; buffer: SharedArrayBuffer } | { forget: number };

const workerThreads = builtin('node:worker_threads');
export const MAX_THREADS = 8; // CTRL has a claim word for each
let pool: Pool | null = null;
let threads = workerThreads ? Math.max(1, Math.min(Number(process.env.FACENET_THREADS) || builtin('node:os')!.availableParallelism(), MAX_THREADS)) : 1;

/** Number of threads GEMMs use (1 = single-threaded). Defaults to FACENET_THREADS or the core count. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, got ${n}`);
  threads = workerThreads ? Math.min(n, MAX_THREADS) : 1; // no worker threads here (a browser): one thread
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

function post(p: Pool, message: WorkerMessage): void {
  for (const w of p.workers) w.postMessage(message);
}

function ensurePool(floats: number): Pool {
  if (!pool) {
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL.SIZE * 4));
    const operands = new Int32Array(new SharedArrayBuffer(3 * OPERAND_WORDS * 4));
    const errors: MessagePort[] = [];
    const workers = Array.from({ length: threads - 1 }, (_, i) => {
      const { port1, port2 } = new workerThreads!.MessageChannel();
      const w = new workerThreads!.Worker(new URL('./gemm_worker.js', import.meta.url), { workerData: { ctrl, operands, index: i + 1, errors: port2 }, transferList: [port2] });
      w.unref();
      port1.unref();
      errors.push(port1);
      return w;
    });
    pool = { workers, errors, ctrl, operands, data: new Float32Array(0), buffers: new WeakMap() };
  }
  if (pool.data.length < floats) {
    pool.data = new Float32Array(new SharedArrayBuffer(Math.max(floats, pool.data.length * 2) * 4));
    post(pool, { data: pool.data }); // picked up with receiveMessageOnPort at the next job
  }
  return pool;
}

/**
 * Columns [from, to) of C for thread t of T, in multiples of `align`: 8 (the microkernel's width), or the
 * images' plane size when B is an images view, so each worker's columns start at an image (see from()).
 */
export function columnSlice(N: number, t: number, T: number, align = 8): [number, number] {
  const chunk = Math.ceil(N / T / align) * align;
  return [Math.min(N, t * chunk), Math.min(N, (t + 1) * chunk)];
}

/** Rows [from, to) of C for thread t of T (splitting by rows), in multiples of 4 (the microkernel's height). */
export function rowSlice(M: number, t: number, T: number): [number, number] {
  const chunk = Math.ceil(M / T / 4) * 4;
  return [Math.min(M, t * chunk), Math.min(M, (t + 1) * chunk)];
}

/**
 * Whether to split C by rows rather than columns: each thread packs all of op(A) and its share of op(B)
 * when split by columns, all of op(B) and its share of op(A) by rows. Rows win when op(A) is the larger
 * (a batch-1 convolution over a small plane: the filters outweigh the image) and is a plain matrix,
 * whose rows ship as they are.
 */
const splitsByRows = (M: number, N: number, A: Matrix): boolean =>
  M > N && M >= 8 * threads && !A.images && !A.produce && !A.consume && A.data instanceof Float32Array;

/**
 * Whether a product is worth the copies and the synchronization: a threaded GEMM costs about 100 us more
 * (shipping operands, waking the workers, writing their blocks back). Measured here on 2 cores, batch-1
 * convolutions of 2.4 and 3.5 M multiply-adds took 1.3-1.5x as long on 2 threads as on one; from 9 M on,
 * 2 threads won (0.6-0.9x).
 */
const MIN_THREADED_WORK = 6e6;
let minThreadedWork = MIN_THREADED_WORK;
let jobs = 0;

/** The fewest multiply-adds a GEMM must have to be threaded (tests set 0 to thread small products); undefined: the default. */
export function setMinThreadedWork(macs?: number): void {
  minThreadedWork = macs ?? MIN_THREADED_WORK;
}

/** GEMMs run on the worker threads since the process started. */
export function threadedGemms(): number {
  return jobs;
}

export function useThreads(M: number, N: number, K: number, data: Matrix['data']): boolean {
  return threads > 1 && data instanceof Float32Array && M * N * K >= minThreadedWork && N >= 8 * threads;
}

/*
 * How the workers get the operands: A whole, and B as what the workers' columns read, copied into the
 * shared buffer in one of three forms, described to the workers by OPERAND words:
 * - PLAIN: the stored matrix packed (row stride = its columns). For B, only each worker's columns.
 * - IMAGES: an images view's images as they are (one memcpy, or one per image): no per-plane copying here.
 *   For B, the images (or each image's channels, see shipping) the workers' columns read.
 * - COLS: a convolution's cols as the input it reads (ColsSource): each worker computes its own share of
 *   the cols as it packs them, in parallel, instead of the caller computing it for them. For B, the
 *   images (or channels) its workers' columns read.
 * Shared buffer layout (floats): A at 0, then B, then C as an [M, N] matrix (the workers' columns of it, and
 * the caller's when C is consumed at the end), or in its place the copy of the workers' images' dx.
 * An operand (or C, or the dx a consumed C is added onto) whose values already live in a tensor's
 * SharedArrayBuffer (alloc() makes them there inside tidyAndRecycle blocks, see sharesArrays) is not
 * copied at all: its words say where it lies in that buffer (BUFFER: the buffer's id, see bufferId), and
 * the workers read (or write) it in place.
 */
const PLAIN = 0, IMAGES = 1, COLS = 2;
const OPERAND_WORDS = 32; // room for a ColsSource's words
const OPERAND = { KIND: 0, AT: 1, LD: 2, P: 3, STRIDE: 4, COLS: 5, BUFFER: OPERAND_WORDS - 1 } as const;
/** Shipping.kind of an operand the workers read in place (its words still give its form: PLAIN, IMAGES or COLS). */
const IN_PLACE = 3;

/**
 * The form an operand is shipped in, how many floats that takes (B as PLAIN: all workers' columns), and
 * which part of it: B's workers read only the product's columns from `firstColumn` on (the caller reads
 * its own in place). When those are B's stored columns (B not transposed), an IMAGES or COLS operand
 * ships the images from the one holding that column on; when they are its stored rows (B transposed: a
 * filter gradient), each image's channels from the one holding that row on. Otherwise all of it.
 */
interface Shipping { kind: number; floats: number; firstImage: number; firstChannel: number }
function shipping(X: Matrix, rows: number, cols: number, workerRows: number, workerCols: number, firstColumn = 0, transposed = false): Shipping {
  if (sharedValues(X)) return { kind: IN_PLACE, floats: 0, firstImage: 0, firstChannel: 0 };
  const [firstStored, firstRow] = transposed ? [0, firstColumn] : [firstColumn, 0];
  if (X.images && X.ld === X.images.P) {
    const P = X.images.P, firstImage = Math.floor(firstStored / P);
    return { kind: IMAGES, floats: (Math.ceil(cols / P) - firstImage) * (rows - firstRow) * P, firstImage, firstChannel: firstRow };
  }
  if (X.cols && X.cols.x instanceof Float32Array) {
    const c = X.cols, firstImage = Math.floor(firstStored / c.P), firstChannel = Math.floor(firstRow / c.taps);
    const floats = firstChannel > 0 ? (c.images - firstImage) * (c.channels - firstChannel) * c.plane : c.floats - firstImage * c.imageStride;
    return { kind: COLS, floats, firstImage, firstChannel };
  }
  return { kind: PLAIN, floats: workerRows * workerCols, firstImage: 0, firstChannel: 0 };
}

/** Copies stored rows [r0, r0+rows) x columns [c0, c0+cols) of X into d[at..], packed. */
function copyPacked(X: Matrix, r0: number, rows: number, c0: number, cols: number, d: Float32Array, at: number): void {
  if (X.ld === cols && c0 === 0 && !X.images && !X.produce) d.set(X.data.subarray(X.offset + r0 * cols, X.offset + (r0 + rows) * cols), at);
  else readBlock(X, r0, rows, c0, cols, d, at, cols);
}

/**
 * Copies the part of X (stored rows x cols) that `s` names into d[at..] as an IMAGES or COLS operand and
 * describes it in words[o..]: each image's channels (planes) from s.firstChannel on, images from
 * s.firstImage on, side by side. Its AT word is where image 0's channel 0 would be (before `at` when parts
 * are left out: the workers never read those), its image stride that of the copy.
 */
function shipWhole(X: Matrix, rows: number, cols: number, d: Float32Array, at: number, words: Int32Array, o: number, s: Shipping): void {
  words[o + OPERAND.KIND] = s.kind;
  if (s.kind === COLS) {
    const c = X.cols!, from = s.firstChannel * c.plane;
    if (OPERAND.COLS + c.words.length > OPERAND.BUFFER) throw new Error('threads: a ColsSource has more words than the workers read');
    words.set(c.words, o + OPERAND.COLS);
    if (from === 0) {
      const skipped = s.firstImage * c.imageStride;
      d.set(c.x.subarray(c.base + skipped, c.base + c.floats), at);
      words[o + OPERAND.AT] = at - skipped;
      return;
    }
    const size = (c.channels - s.firstChannel) * c.plane;
    for (let n = s.firstImage; n < c.images; n++) d.set(c.x.subarray(c.base + n * c.imageStride + from, c.base + n * c.imageStride + from + size), at + (n - s.firstImage) * size);
    words[o + OPERAND.AT] = at - s.firstImage * size - from;
    words[o + OPERAND.COLS] = size; // the copy's image stride (words[0] of the ColsSource)
    return;
  }
  const { P, stride } = X.images!, from = s.firstChannel * P, size = (rows - s.firstChannel) * P, images = Math.ceil(cols / P);
  if (stride === size && from === 0) d.set(X.data.subarray(X.offset + s.firstImage * stride, X.offset + images * size), at);
  else for (let n = s.firstImage; n < images; n++) d.set(X.data.subarray(X.offset + n * stride + from, X.offset + n * stride + from + size), at + (n - s.firstImage) * size);
  words[o + OPERAND.AT] = at - s.firstImage * size - from;
  words[o + OPERAND.P] = P;
  words[o + OPERAND.STRIDE] = size;
}

/** The operand a worker reads, over the shared buffer (or its tensor's, in place), from its words. */
function shipped(d: Float32Array, words: Int32Array, o: number, rebuildCols: RebuildCols, consumed = false): Matrix {
  const at = words[o + OPERAND.AT]!, data = words[o + OPERAND.BUFFER] ? bufferView(words[o + OPERAND.BUFFER]!) : d;
  switch (words[o + OPERAND.KIND]) {
    case IMAGES: return imagesMat(data, at, words[o + OPERAND.P]!, words[o + OPERAND.STRIDE]!);
    case COLS: return rebuildCols(data, at, words.subarray(o + OPERAND.COLS, o + OPERAND.BUFFER), consumed);
    default: return mat(data, at, words[o + OPERAND.LD]!);
  }
}

/**
 * The shared array X's values live in, when the workers can use X there in place: a plain matrix or an
 * images view over it, or a convolution's cols of an input in it.
 */
function sharedValues(X: Matrix): Float32Array | null {
  if (X.cols) return isShared(X.cols.x) ? X.cols.x : null;
  if (X.produce || X.consume || (X.images && X.ld !== X.images.P)) return null;
  return isShared(X.data) ? X.data : null;
}

/** Describes X (see sharedValues) in words[o..] as it lies in its tensor's shared buffer, posting that buffer first if new. */
function describeInPlace(p: Pool, X: Matrix, words: Int32Array, o: number): void {
  const data = sharedValues(X)!, shift = data.byteOffset / 4; // offsets from the buffer's start
  words.fill(0, o, o + OPERAND_WORDS);
  words[o + OPERAND.BUFFER] = bufferId(p, data);
  if (X.cols) {
    words.set([COLS, X.cols.base + shift], o);
    words.set(X.cols.words, o + OPERAND.COLS);
  } else if (X.images) words.set([IMAGES, X.offset + shift, X.ld, X.images.P, X.images.stride], o);
  else words.set([PLAIN, X.offset + shift, X.ld], o);
}

/**
 * Whether the workers write their blocks of C in place: C is plain or an images view in a shared buffer,
 * and (an images view) each thread's block starts at one of its images (its columns start at multiples
 * of `columnAlign`; 0: they all start at column 0, as when C is split by rows).
 */
const cInPlace = (C: Matrix, columnAlign: number): boolean => sharedValues(C) !== null && !C.cols && (!C.images || columnAlign % C.images.P === 0);

/** conv.ts's colsFromWords, handed in by the worker (this module does not depend on conv.ts). */
export type RebuildCols = (x: Float32Array, base: number, words: ArrayLike<number>, consumed: boolean) => Matrix;

/**
 * X from stored row r and column c on. An images view stays one (so it is staged image by image, see
 * wasm_gemm.ts) when c falls on an image; otherwise, and for a produced matrix, a window that reads X.
 */
function from(X: Matrix, r: number, c: number): Matrix {
  if (X.images && c % X.images.P === 0) return { ...X, offset: X.offset + r * X.ld + (c / X.images.P) * X.images.stride, epilogue: epilogueFromRow(X.epilogue, r) };
  if (!X.images && !X.cols && !X.produce && !X.consume) return { ...X, offset: X.offset + r * X.ld + c, epilogue: epilogueFromRow(X.epilogue, r) };
  return { data: X.data, offset: 0, ld: 0, produce: (r0, rows, c0, cols, buf, at, ld, room) => readBlock(X, r0 + r, rows, c0 + c, cols, buf, at, ld, room) };
}

/**
 * An images view's columns of one image only (a batch of one) as the plain [rows, P] matrix they are, so
 * that threads splitting them mid-image write their columns in place. Every thread then writes its
 * columns row by row: an images view's block may be written back as whole planes (imagesBlock), over the
 * columns another thread is writing at the same time.
 */
const oneImagePlain = (X: Matrix, N: number): Matrix =>
  X.images && N === X.images.P && X.ld === X.images.P && !X.cols && !X.produce && !X.consume ? { data: X.data, offset: X.offset, ld: X.ld, epilogue: X.epilogue } : X;

/** C (+)= op(A) op(B) on all threads. */
export function gemmThreaded(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C0: Matrix, accumulate: boolean): void {
  const C = oneImagePlain(C0, N);
  if (splitsByRows(M, N, A)) return gemmThreadedByRows(transA, transB, M, N, K, A, B, C, accumulate);
  const T = threads; // the pool has threads - 1 workers
  const [aRows, aCols] = transA ? [K, M] : [M, K], [bRows, bCols] = transB ? [N, K] : [K, N];
  const a = shipping(A, aRows, aCols, aRows, aCols);
  // Columns split at images where that keeps the threads' shares even: at least two images each, or the
  // same number (a batch of T images). Otherwise at multiples of 8, or for a consumed C of
  // CONSUMED_BLOCK (the caller then hands its own blocks over as it computes them, the workers' after).
  const P = B.images && !transB ? B.images.P : 0;
  const align = P > 0 && (N >= 2 * T * P || N % (T * P) === 0) ? P : C.consume ? CONSUMED_BLOCK : 8;
  const own = columnSlice(N, 0, T, align)[1];
  const b = shipping(B, bRows, bCols, K, N - own, own, transB);
  // A consumed C (col2im) whose threads' columns start at images: each thread adds its own columns onto its
  // images' dx (the workers' onto a copy of theirs, copied back), in parallel and in the blocks one thread
  // would use, so the sums do not depend on the thread count. Otherwise (the threads share images) the
  // caller adds its own blocks as it computes them, and the workers' in order once they are done: the
  // blocks and their order of one thread again.
  const onto = C.consume && C.cols && C.cols.x instanceof Float32Array && align === C.cols.P ? C.cols : null;
  const ontoInPlace = onto !== null && isShared(onto.x), cShared = !C.consume && cInPlace(C, align);
  const skipped = onto ? (own / align) * onto.imageStride : 0; // the caller's images of dx
  const bAt = roundUp4(a.floats), cAt = roundUp4(bAt + b.floats), dxAt = cAt; // C is not stored with onto: the copy of dx is there
  const eAt = roundUp4(ontoInPlace || cShared ? cAt : onto ? dxAt + onto.floats - skipped : cAt + M * N);
  const p = ensurePool(eAt + epilogueFloats(C, M));
  const d = p.data, words = p.operands;
  words.fill(0, 0, 3 * OPERAND_WORDS);
  if (a.kind === IN_PLACE) describeInPlace(p, A, words, 0);
  else if (a.kind === PLAIN) {
    copyPacked(A, 0, aRows, 0, aCols, d, 0);
    words.set([PLAIN, 0, aCols], 0);
  } else shipWhole(A, aRows, aCols, d, 0, words, 0, a);
  if (b.kind === IN_PLACE) describeInPlace(p, B, words, OPERAND_WORDS);
  else if (b.kind !== PLAIN) shipWhole(B, bRows, bCols, d, bAt, words, OPERAND_WORDS, b);
  else words.set([PLAIN, bAt], OPERAND_WORDS);
  for (let t = 1; t < T; t++) {
    const [j0, j1] = columnSlice(N, t, T, align), n = j1 - j0;
    if (n <= 0) continue;
    if (b.kind === PLAIN) {
      if (transB) copyPacked(B, j0, n, 0, K, d, bAt + K * (j0 - own));
      else copyPacked(B, 0, K, j0, n, d, bAt + K * (j0 - own));
    }
    if (accumulate && !cShared) readBlock(C, 0, M, j0, n, d, cAt + j0, N);
  }
  if (ontoInPlace) describeInPlace(p, C, words, 2 * OPERAND_WORDS);
  else if (onto) {
    d.set(onto.x.subarray(onto.base + skipped, onto.base + onto.floats), dxAt);
    words.set([COLS, dxAt - skipped], 2 * OPERAND_WORDS);
    words.set(onto.words, 2 * OPERAND_WORDS + OPERAND.COLS);
  } else if (cShared) describeInPlace(p, C, words, 2 * OPERAND_WORDS);
  // The caller's block starts at column 0: the first `own` columns of the operands as they are.
  // With `onto`, each thread's blocks go to col2im as they are computed, as on one thread: the caller's onto
  // dx itself (its columns start at 0), a worker's onto the copy of its images' dx (see consumedColumns).
  const kernel = gemmKernel();
  jobs++;
  const settings = [...gemmWords({ M, N, K, transA, transB, accumulate, cAt, align, byRows: false, consume: !!onto, cInPlace: cShared }, kernel), ...shipEpilogue(C.epilogue, M, d, eAt)];
  runJob(p, settings, () => {
    if (own > 0) gemmBlocked(transA, transB, M, own, K, A, B, C, accumulate, kernel);
  }, (t) => { // worker t's columns, from the operands in place, into its block of the shared C (or onto dx or its copy)
    const [j0, j1] = columnSlice(N, t, T, align);
    if (j1 <= j0) return;
    const c = ontoInPlace ? consumedColumns(C, j0) : onto ? consumedColumns(onto.over(d, dxAt - skipped), j0) : cShared ? from(C, 0, j0) : { ...mat(d, cAt + j0, N), epilogue: C.epilogue };
    gemmBlocked(transA, transB, M, j1 - j0, K, A, transB ? from(B, j0, 0) : from(B, 0, j0), c, accumulate, kernel);
  });
  if (ontoInPlace || cShared) return;
  if (onto) onto.x.set(d.subarray(dxAt, dxAt + onto.floats - skipped), onto.base + skipped);
  else if (C.consume) writeColumns(consumedColumns(C, own), M, N - own, d, cAt + own, N);
  else if (own < N && !writeImages(C, 0, M, own, N - own, d, cAt + own, N)) writeBlock(C, 0, M, own, N - own, d, cAt + own, N);
}

/** Columns [j0, ..) of a consumed result as a consumed result of their own, handed over in the whole result's blocks. */
const consumedColumns = (X: Matrix, j0: number): Matrix =>
  ({ ...X, consume: (r0, rows, c0, cols, buf, at, ld, room) => X.consume!(r0, rows, c0 + j0, cols, buf, at, ld, room), consumedFrom: j0 });

/**
 * gemmThreaded split by rows of C (see splitsByRows): the workers' rows of op(A) are shipped PLAIN, each
 * worker's block after the previous one's, and B whole (IMAGES, COLS, or PLAIN). C's rows are computed
 * by the same kernel with the same slabs as on one thread: the same bits.
 */
function gemmThreadedByRows(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): void {
  const T = threads, own = rowSlice(M, 0, T)[1];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const b = shipping(B, bRows, bCols, bRows, bCols);
  const cShared = !C.consume && cInPlace(C, 0); // rows of an images view are its planes: from(C, i0, 0) is one
  const bAt = roundUp4((M - own) * K), cAt = roundUp4(bAt + b.floats), eAt = roundUp4(cShared ? cAt : cAt + M * N);
  const p = ensurePool(eAt + epilogueFloats(C, M));
  const d = p.data, words = p.operands;
  words.fill(0, 0, 3 * OPERAND_WORDS);
  for (let t = 1; t < T; t++) {
    const [i0, i1] = rowSlice(M, t, T), m = i1 - i0;
    if (m <= 0) continue;
    if (transA) copyPacked(A, 0, K, i0, m, d, (i0 - own) * K); // stored [K, m]
    else copyPacked(A, i0, m, 0, K, d, (i0 - own) * K); // stored [m, K]
    if (accumulate && !cShared) readBlock(C, i0, m, 0, N, d, cAt + i0 * N, N);
  }
  words.set([PLAIN, 0], 0);
  if (b.kind === IN_PLACE) describeInPlace(p, B, words, OPERAND_WORDS);
  else if (b.kind === PLAIN) {
    copyPacked(B, 0, bRows, 0, bCols, d, bAt);
    words.set([PLAIN, bAt, bCols], OPERAND_WORDS);
  } else shipWhole(B, bRows, bCols, d, bAt, words, OPERAND_WORDS, b);
  if (cShared) describeInPlace(p, C, words, 2 * OPERAND_WORDS);
  const kernel = gemmKernel();
  jobs++;
  runJob(p, [...gemmWords({ M, N, K, transA, transB, accumulate, cAt, align: 8, byRows: true, consume: false, cInPlace: cShared }, kernel), ...shipEpilogue(C.epilogue, M, d, eAt)], () => {
    if (own > 0) gemmBlocked(transA, transB, own, N, K, A, B, C.consume ? mat(d, cAt, N) : C, accumulate, kernel);
  }, (t) => { // worker t's rows of op(A) in place (stored rows, or columns when transposed)
    const [i0, i1] = rowSlice(M, t, T);
    const rows = mat(A.data, A.offset + (transA ? i0 : i0 * A.ld), A.ld);
    if (i1 > i0) gemmBlocked(transA, transB, i1 - i0, N, K, rows, B, cShared ? from(C, i0, 0) : { ...mat(d, cAt + i0 * N, N), epilogue: epilogueFromRow(C.epilogue, i0) }, accumulate, kernel);
  });
  if (cShared) return;
  if (C.consume) writeColumns(C, M, N, d, cAt, N);
  else if (own < M && !writeImages(C, own, M - own, 0, N, d, cAt + own * N, N)) writeBlock(C, own, M - own, 0, N, d, cAt + own * N, N);
}

interface Job { M: number; N: number; K: number; transA: boolean; transB: boolean; accumulate: boolean; cAt: number; align: number; byRows: boolean; consume: boolean; cInPlace: boolean }

/** A GEMM job's control words, with the kernel every thread is to use (so results do not depend on the thread count). */
const gemmWords = (job: Job, kernel: 'wasm' | 'js'): (readonly [number, number])[] => [
  [CTRL.KIND, GEMM_JOB], [CTRL.M, job.M], [CTRL.N, job.N], [CTRL.K, job.K], [CTRL.C_AT, job.cAt], [CTRL.ALIGN, job.align],
  [CTRL.TRANS_A, +job.transA], [CTRL.TRANS_B, +job.transB], [CTRL.ACCUMULATE, +job.accumulate], [CTRL.BY_ROWS, +job.byRows],
  [CTRL.CONSUME, +job.consume], [CTRL.C_IN_PLACE, +job.cInPlace], [CTRL.WASM, kernel === 'wasm' ? 1 : 0],
];

/** Floats the shared buffer holds for C's epilogue tables (scale, shift, slopes), if it has one. */
const epilogueFloats = (C: Matrix, M: number): number => (C.epilogue ? 3 * M : 0);

/** Copies C's epilogue tables, if any, to d[at..] (M floats each), and returns the job's control words saying so. */
function shipEpilogue(ep: RowEpilogue | undefined, M: number, d: Float32Array, at: number): [number, number][] {
  if (!ep) return [[CTRL.EPILOGUE, 0]];
  d.set(ep.scale.subarray(0, M), at);
  d.set(ep.shift.subarray(0, M), at + M);
  if (ep.slopes) d.set(ep.slopes.subarray(0, M), at + 2 * M);
  return [[CTRL.EPILOGUE, 1 + AFFINE_ACTIVATIONS.indexOf(ep.activation)], [CTRL.EPILOGUE_AT, at]];
}

/** A worker's view of the job's epilogue (see shipEpilogue): tables over the shared buffer. */
function shippedEpilogue(d: Float32Array, ctrl: Int32Array, M: number): RowEpilogue | undefined {
  const mode = ctrl[CTRL.EPILOGUE]!, at = ctrl[CTRL.EPILOGUE_AT]!;
  if (mode === 0) return undefined;
  const activation = AFFINE_ACTIVATIONS[mode - 1]!;
  return { activation, scale: d.subarray(at, at + M), shift: d.subarray(at + M, at + 2 * M), slopes: activation === 'prelu' ? d.subarray(at + 2 * M, at + 3 * M) : undefined };
}

/**
 * Claims slice t of job `seq` for the calling thread: true for whichever thread (the worker, or the caller
 * once its own share is done) gets there first. CLAIM + t holds the last job whose slice t was taken.
 */
export function claimSlice(ctrl: Int32Array, t: number, seq: number): boolean {
  const last = Atomics.load(ctrl, CTRL.CLAIM + t);
  return last < seq && Atomics.compareExchange(ctrl, CTRL.CLAIM + t, last, seq) === last;
}

let stolen = 0;

/** Worker slices the calling thread computed itself (its worker had not started them) since the process started. */
export function slicesTakenBack(): number {
  return stolen;
}

/**
 * Starts the workers on a job (its control words: `settings`), runs the caller's own share, then computes
 * itself each worker slice no worker has claimed yet (a worker still starting up, or descheduled: its slice
 * would otherwise hold the caller up), and waits for the claimed ones. The same slices by the same code on
 * either thread: the same bits.
 */
function runJob(p: Pool, settings: readonly (readonly [number, number])[], ownShare: () => void, workerShare: (t: number) => void): void {
  const c = p.ctrl;
  for (const [word, value] of settings) Atomics.store(c, word, value);
  Atomics.store(c, CTRL.THREADS, threads);
  Atomics.store(c, CTRL.DONE, 0);
  Atomics.store(c, CTRL.FAILED, 0);
  const seq = Atomics.add(c, CTRL.SEQ, 1) + 1;
  Atomics.notify(c, CTRL.SEQ);
  ownShare();
  let taken = 0;
  for (let t = 1; t < threads; t++) {
    if (!claimSlice(c, t, seq)) continue;
    workerShare(t);
    taken++;
  }
  stolen += taken;
  const started = Date.now();
  spinWhile(() => Atomics.load(c, CTRL.DONE) + taken < threads - 1);
  for (let done = Atomics.load(c, CTRL.DONE); done + taken < threads - 1; done = Atomics.load(c, CTRL.DONE)) {
    Atomics.wait(c, CTRL.DONE, done, 1000);
    if (Date.now() - started > 120_000) {
      shutdownThreads();
      throw new Error('worker threads stopped answering; set FACENET_THREADS=1 to run single-threaded');
    }
  }
  if (Atomics.load(c, CTRL.FAILED) !== 0) throw workerFailure(p);
}

/** The error a worker reported (it caught an exception in its slice): the pool is shut down. */
function workerFailure(p: Pool): Error {
  const reports = p.errors.map((port) => workerThreads!.receiveMessageOnPort(port)?.message).filter((m) => m !== undefined);
  shutdownThreads();
  return new Error(`a worker thread failed: ${reports.join('; ') || 'no report'} (FACENET_THREADS=1 runs single-threaded)`);
}

/**
 * How long a thread polls before it sleeps in Atomics.wait: waking a sleeping thread took 50-300 us here
 * (a virtual machine's idle core), longer than a pass's half of a few hundred microseconds, so without
 * polling the caller ended up computing most workers' slices of a pass itself. Jobs of a training step or
 * a batch come back to back; between batches a worker polls for at most this long.
 */
export const SPIN_MS = 2;

/** Polls `busy` for at most SPIN_MS. */
export function spinWhile(busy: () => boolean): void {
  const until = performance.now() + SPIN_MS;
  while (busy()) {
    for (let i = 0; i < 64 && busy(); i++); // a few polls between clock reads
    if (performance.now() > until) return;
  }
}

const roundUp4 = (n: number): number => Math.ceil(n / 4) * 4;

/**
 * Worker t's share, from the operands in the shared buffer d (see OPERAND): columns [j0, j1) of C, or
 * rows [i0, i1) when the job is split by rows.
 */
export function runSlice(d: Float32Array, words: Int32Array, ctrl: Int32Array, t: number, rebuildCols: RebuildCols): void {
  const M = ctrl[CTRL.M]!, N = ctrl[CTRL.N]!, K = ctrl[CTRL.K]!, T = ctrl[CTRL.THREADS]!;
  const transA = ctrl[CTRL.TRANS_A] === 1, transB = ctrl[CTRL.TRANS_B] === 1;
  const kernel = ctrl[CTRL.WASM] === 1 ? 'wasm' : 'js', accumulate = ctrl[CTRL.ACCUMULATE] === 1;
  if (ctrl[CTRL.BY_ROWS] === 1) {
    const own = rowSlice(M, 0, T)[1], [i0, i1] = rowSlice(M, t, T), m = i1 - i0;
    if (m <= 0) return;
    const A = mat(d, (i0 - own) * K, transA ? m : K), B = shipped(d, words, OPERAND_WORDS, rebuildCols);
    const epilogue = epilogueFromRow(shippedEpilogue(d, ctrl, M), i0);
    const C = ctrl[CTRL.C_IN_PLACE] === 1 ? from(shipped(d, words, 2 * OPERAND_WORDS, rebuildCols), i0, 0) : mat(d, ctrl[CTRL.C_AT]! + i0 * N, N);
    gemmBlocked(transA, transB, m, N, K, A, B, { ...C, epilogue }, accumulate, kernel);
    return;
  }
  const [j0, j1] = columnSlice(N, t, T, ctrl[CTRL.ALIGN]), n = j1 - j0;
  if (n <= 0) return;
  const own = columnSlice(N, 0, T, ctrl[CTRL.ALIGN])[1];
  const A = shipped(d, words, 0, rebuildCols);
  let B: Matrix;
  if (words[OPERAND_WORDS + OPERAND.KIND] === PLAIN && !words[OPERAND_WORDS + OPERAND.BUFFER]) B = mat(d, words[OPERAND_WORDS + OPERAND.AT]! + K * (j0 - own), transB ? K : n);
  else B = transB ? from(shipped(d, words, OPERAND_WORDS, rebuildCols), j0, 0) : from(shipped(d, words, OPERAND_WORDS, rebuildCols), 0, j0);
  const o = 2 * OPERAND_WORDS; // with CONSUME: dx (or the copy of this worker's images of it) its columns are added onto; with C_IN_PLACE: C
  const C = ctrl[CTRL.CONSUME] === 1 ? consumedColumns(shipped(d, words, o, rebuildCols, true), j0)
    : ctrl[CTRL.C_IN_PLACE] === 1 ? from(shipped(d, words, o, rebuildCols), 0, j0)
    : mat(d, ctrl[CTRL.C_AT]! + j0, N);
  gemmBlocked(transA, transB, M, n, K, A, B, { ...C, epilogue: shippedEpilogue(d, ctrl, M) }, accumulate, kernel);
}

// ---- passes on all threads ----

/*
 * The passes around the GEMMs (wasm_planes.ts: batchnorm's statistics, normalization and gradient,
 * channelAffine, elementwise passes; wasm_pool.ts: max and L2 pooling; wasm_lrn.ts: LRN) run on every
 * thread when all their arrays live in SharedArrayBuffers, as alloc() makes them inside tidyAndRecycle
 * blocks while threads > 1 (see sharesArrays): a training step's tensors are then the workers' too, with
 * nothing to copy. A buffer is posted to the workers the first time a job uses it; they keep it by id until
 * the main thread's is collected. Each thread runs the same pass function over its range of units
 * (channels, planes, images, or values): every output value, and every channel's sums, come out as on one
 * thread.
 */

/** The fewest values a pass must touch to be threaded: a job costs 10-25 us (measured here), a value ~0.3-1 ns. */
const MIN_THREADED_VALUES = 65536;
/** Arrays of at least this many floats are made in SharedArrayBuffers (inside tidyAndRecycle, threads > 1). */
const MIN_SHARED_FLOATS = 16384;
let passJobs = 0;

/** Passes run on the worker threads since the process started. */
export function threadedPasses(): number {
  return passJobs;
}

/** Whether alloc() should make an array of n floats in a SharedArrayBuffer (it does so only inside tidyAndRecycle blocks). */
export function sharesArrays(n: number): boolean {
  return threads > 1 && n >= MIN_SHARED_FLOATS;
}

/** Whether a is a float32 array in a SharedArrayBuffer (a browser that is not cross-origin isolated has no such type). */
export const isShared = (a: ArrayLike<number>): a is Float32Array =>
  a instanceof Float32Array && typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer;

/**
 * The arguments of a pass: its arrays (each a Float32Array view, shared when threaded), integers, float32
 * tables of up to `tableLength` values each, and float64 sums of `tableLength` values each (its outputs).
 */
export interface PassArgs { arrays: Float32Array[]; ints: number[]; tables: ArrayLike<number>[]; sums: Float64Array[]; tableLength: number }
/** A pass over units [from, to) (channels, planes, images or values); it writes its units' sums into args.sums. */
type RangePass = (args: PassArgs, from: number, to: number) => void;

/** The passes that can run on the workers, by number (their modules register them; the workers load those modules too). */
export const PASS = { AFFINE: 0, MOMENTS: 1, BN_SUMS: 2, BN_INPUT_GRADIENT: 3, FLAT: 4, MAX_POOL: 5, MAX_POOL_GRAD: 6, L2_POOL: 7, LRN: 8, LRN_GRAD: 9, BN_BACKWARD: 10, BN_FORWARD: 11, DEPTHWISE: 12, DEPTHWISE_BACKWARD: 13 } as const;
const passes: RangePass[] = [];

/**
 * Registers pass number `pass`: f, given the kernels of the WebAssembly module that defines it (`kernels()`,
 * instantiated on first use on whichever thread runs the pass).
 */
export function registerPass<K>(pass: number, kernels: () => K | null, f: (k: K, args: PassArgs, from: number, to: number) => void): void {
  passes[pass] = (args, from, to) => {
    const k = kernels();
    if (!k) throw new Error(`threads: pass ${pass} reached a thread without its WebAssembly kernels`);
    f(k, args, from, to);
  };
}

/**
 * Runs a pass over units [0, units) (in multiples of `align` per thread) on all threads when it touches
 * `values` values or more and all its arrays are shared, else here; returns its `sums` float64 tables.
 */
export function runPass(pass: number, args: Omit<PassArgs, 'sums'>, sums: number, units: number, align: number, values: number): Float64Array[] {
  const threaded = runPassThreaded(pass, args, sums, units, align, values);
  if (threaded) return threaded;
  const alone: PassArgs = { ...args, sums: Array.from({ length: sums }, () => new Float64Array(args.tableLength)) };
  passes[pass]!(alone, 0, units);
  return alone.sums;
}

/**
 * A pass job's operand words: pass, units, align, and the counts of arrays, ints and tables, tableLength,
 * sums; from LIST on, each array as (buffer id, first float, length), each table's length, the ints.
 */
const LIST = 8;

const workerBuffers = new Map<number, SharedArrayBuffer>(); // in a worker: the buffers posted to it, by id
const bufferViews = new Map<number, Float32Array>(); // and float32 views of them

function bufferView(id: number): Float32Array {
  let view = bufferViews.get(id);
  if (!view) {
    const buffer = workerBuffers.get(id);
    if (!buffer) throw new Error(`threads: a job names buffer ${id}, which this worker was not posted`);
    bufferViews.set(id, (view = new Float32Array(buffer)));
  }
  return view;
}
let nextBufferId = 1;
const forgetBuffer = new FinalizationRegistry<number>((id) => { if (pool) post(pool, { forget: id }); });

/** In a worker: takes in a message from the main thread (see WorkerMessage); returns a new shared buffer, if it is one. */
export function receive(message: WorkerMessage): Float32Array | null {
  if ('data' in message) return message.data;
  if ('forget' in message) {
    workerBuffers.delete(message.forget);
    bufferViews.delete(message.forget);
  }
  else workerBuffers.set(message.id, message.buffer);
  return null;
}

/** The id the workers know a's buffer by, posting it to them first if they have not had it. */
function bufferId(p: Pool, a: Float32Array): number {
  const buffer = a.buffer as SharedArrayBuffer;
  let id = p.buffers.get(buffer);
  if (id === undefined) {
    id = nextBufferId++;
    p.buffers.set(buffer, id);
    post(p, { id, buffer });
    forgetBuffer.register(buffer, id);
  }
  return id;
}

/** runPass on all threads, thread t over its slice of the units; null where it is not worth it or an array is not shared. */
function runPassThreaded(pass: number, args: Omit<PassArgs, 'sums'>, sums: number, units: number, align: number, values: number): Float64Array[] | null {
  if (threads < 2 || values < MIN_THREADED_VALUES || units < 2 * align * threads || !args.arrays.every(isShared)) return null;
  const L = args.tableLength, sumsAt = roundUp4(args.tables.length * L);
  const p = ensurePool(sumsAt + 2 * sums * L);
  const d = p.data, words = p.operands;
  const tables = args.tables.map((t, i) => { d.set(t, i * L); return d.subarray(i * L, i * L + t.length); });
  const sumViews = Array.from({ length: sums }, (_, i) => new Float64Array(d.buffer, (sumsAt + 2 * i * L) * 4, L).fill(0));
  const list = args.arrays.flatMap((a) => [bufferId(p, a), a.byteOffset / 4, a.length]);
  if (LIST + list.length + args.tables.length + args.ints.length > OPERAND_WORDS * 3) throw new Error('threads: a pass has more arguments than the workers read');
  words.set([pass, units, align, args.arrays.length, args.ints.length, args.tables.length, L, sums, ...list, ...args.tables.map((t) => t.length), ...args.ints], 0);
  const full: PassArgs = { ...args, tables, sums: sumViews };
  const T = threads;
  passJobs++;
  const run = passes[pass]!;
  runJob(p, [[CTRL.KIND, PASS_JOB]], () => run(full, ...columnSlice(units, 0, T, align)), (t) => run(full, ...columnSlice(units, t, T, align)));
  return sumViews.map((v) => v.slice());
}

/** Worker t's slice of a pass, from its words (see runPassThreaded) over the shared buffer d. */
export function runPassSlice(d: Float32Array, words: Int32Array, ctrl: Int32Array, t: number): void {
  const [pass, units, align, nArrays, nInts, nTables, L, sums] = words as unknown as number[];
  const arrays = Array.from({ length: nArrays! }, (_, i) => {
    const [id, at, length] = words.subarray(LIST + 3 * i, LIST + 3 * i + 3) as unknown as number[];
    return bufferView(id!).subarray(at, at! + length!);
  });
  const lengthsAt = LIST + 3 * nArrays!, intsAt = lengthsAt + nTables!;
  const sumsAt = roundUp4(nTables! * L!);
  const args: PassArgs = {
    arrays, ints: Array.from(words.subarray(intsAt, intsAt + nInts!)), tableLength: L!,
    tables: Array.from({ length: nTables! }, (_, i) => d.subarray(i * L!, i * L! + words[lengthsAt + i]!)),
    sums: Array.from({ length: sums! }, (_, i) => new Float64Array(d.buffer, (sumsAt + 2 * i * L!) * 4, L)),
  };
  const [from, to] = columnSlice(units!, t, ctrl[CTRL.THREADS]!, align!);
  if (to > from) passes[pass!]!(args, from, to);
}
