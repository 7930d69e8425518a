/**
 * A WebAssembly SIMD kernel for float32 GEMM, written out byte by byte at load time: no toolchain, no
 * dependency, about a kilobyte of our own code. JavaScript cannot reach the CPU's vector units; WebAssembly's
 * 128-bit SIMD can, and the blocked GEMM spends nearly all its time in one small loop, so that loop is
 * written in WebAssembly, and so is packing (gemm_fast.ts's panel layout, with 8-column B panels): TypeScript
 * copies the operand's rows into the module's memory (a memcpy per row), and a pack function deals them
 * into panels with vector loads and stores, transposing 4x4 blocks with shuffles where the operand is
 * stored the other way round. (Packing in scalar TypeScript cost half as much time as the kernel itself.)
 *
 * The microkernel keeps a 4x8 tile of C in eight f32x4 registers; each step of k broadcasts four values of
 * the A panel and multiplies them with two vectors of the B panel (a fused multiply-add where relaxed SIMD
 * runs). Every element of C is summed over k in order, in float32, the same way whichever thread computes
 * it and wherever its column falls, so results stay bit-identical across thread counts. (The pure-TypeScript
 * kernel sums in float64; the kernels agree to float32 rounding, which the tests check.) A C with an
 * epilogue (a convolution's folded batchnorm and activation, see gemm.ts) has each finished block mapped
 * in the module's memory (affineRows) before it is copied out: no pass over the output after.
 */
import { blockEnd, CONSUMED_BLOCK, readBlock, writeBlock, zeroMatrix, type Matrix, type ModuleRoom } from './gemm.js';
import { body, I32, instantiate, moduleBytes, repeat, reserveBytes, V128, w, whileAtLeast, type WasmMemory } from './wasm_writer.js';
import { AFFINE_ACTIVATIONS, affineRowsFunction } from './wasm_affine.js';

export const MR = 4;
export const NR = 8;
const KC = 256, NC = 512;
/** The most floats of C computed before they are written out (see gemmWasm's groups of blocks): 512 kB. */
const C_GROUP_FLOATS = 1 << 17;

/*
 * A packed panel is kc rows of R floats, then PAD_ROWS rows of padding before the next panel. Without
 * it, panels of 256 rows lie 8 KiB (B) or 4 KiB (A) apart, and a copy pack, which writes row k of every
 * panel in turn, sends all its stores to the same few L1 sets: measured 0.39 ns a float for B panels
 * (0.73 for A) against 0.16 padded (both). The padding also takes the up to 3 rows a transposing pack
 * writes past kc.
 */
const PAD_ROWS = 4;
const panelFloats = (kc: number, R: number): number => (kc + PAD_ROWS) * R;

// Parameters (bytes for addresses): packed A panels, packed B panels, C tile, A panels, B panels, depth,
// C row stride, and whether to overwrite the tile (first slab) rather than add to it.
const PARAMS = 8;
const [PA, PB, PC, M_PANELS, N_PANELS, KC_, LDC, OVERWRITE] = [0, 1, 2, 3, 4, 5, 6, 7];
// i32 locals, then v128 locals.
const [JP, IP, AP, BP, K, CT, A_START, C_ROW, ROW] = [8, 9, 10, 11, 12, 13, 14, 15, 16]; // CT: the tile's C; C_ROW: its A panel's
const [B0, B1, A, ACC] = [17, 18, 19, 20]; // ACC..ACC+7: row r of the tile is ACC+2r (columns 0-3), ACC+2r+1 (4-7)

/**
 * tile[C] (+)= A panel x B panel over kc steps, for every (A panel, B panel) pair: for each A panel (in L1),
 * along all the B panels (streaming from L2), so C is written a row strip at a time. (The other order,
 * each B panel down all A panels, wrote C's 4x8 tiles scattered down the whole block: measured here 5-7%
 * slower in every role of IRv1's convolutions, most for the shallow products of input gradients.)
 */
function kernelBody(fused: boolean): number[] {
  const { code, emit } = body();
  const decrementAndLoop = (local: number): void => emit(w.get(local), w.i32(1), w.sub, w.tee(local), w.brIf(0));
  emit(w.get(PA), w.set(A_START), w.get(PC), w.set(C_ROW), w.get(M_PANELS), w.set(IP));
  emit(w.loop); // over A panels (4 rows of C each)
  emit(w.get(PB), w.set(BP), w.get(C_ROW), w.set(CT), w.get(N_PANELS), w.set(JP));
  emit(w.loop); // over B panels (8 columns of C each)
  for (let r = 0; r < 8; r++) emit(w.zero, w.set(ACC + r));
  emit(w.get(A_START), w.set(AP), w.get(KC_), w.set(K));
  emit(w.loop); // over k: the hot loop
  emit(w.get(BP), w.load(0), w.set(B0), w.get(BP), w.load(16), w.set(B1));
  for (let r = 0; r < MR; r++) {
    emit(w.get(AP), w.load32Splat(4 * r), w.set(A));
    for (const [acc, b] of [[ACC + 2 * r, B0], [ACC + 2 * r + 1, B1]] as const) {
      if (fused) emit(w.get(A), w.get(b), w.get(acc), w.f32x4RelaxedMadd, w.set(acc));
      else emit(w.get(acc), w.get(A), w.get(b), w.f32x4Mul, w.f32x4Add, w.set(acc));
    }
  }
  emit(w.get(AP), w.i32(4 * MR), w.add, w.set(AP), w.get(BP), w.i32(4 * NR), w.add, w.set(BP));
  decrementAndLoop(K);
  emit(w.end);
  emit(w.get(BP), w.i32(4 * NR * PAD_ROWS), w.add, w.set(BP)); // the next B panel
  for (let r = 0; r < MR; r++) { // write or add the registers into the tile, row by row
    emit(w.get(CT), ...(r > 0 ? [w.get(LDC), w.i32(r), w.mul, w.add] : []), w.set(ROW));
    emit(w.get(OVERWRITE), w.if);
    for (const half of [0, 1]) emit(w.get(ROW), w.get(ACC + 2 * r + half), w.store(16 * half));
    emit(w.else);
    for (const half of [0, 1]) emit(w.get(ROW), w.get(ROW), w.load(16 * half), w.get(ACC + 2 * r + half), w.f32x4Add, w.store(16 * half));
    emit(w.end);
  }
  emit(w.get(CT), w.i32(4 * NR), w.add, w.set(CT));
  decrementAndLoop(JP);
  emit(w.end);
  emit(w.get(AP), w.i32(4 * MR * PAD_ROWS), w.add, w.set(A_START)); // the next A panel
  emit(w.get(C_ROW), w.get(LDC), w.i32(MR), w.mul, w.add, w.set(C_ROW));
  decrementAndLoop(IP);
  emit(w.end);
  return code;
}

// Pack functions: (src, ld, dst, kc, panels, panelKc), addresses and ld in bytes. They write kc rows of R
// floats into each of `panels` R-wide panels, panel p at dst + p*panelFloats(panelKc, R)*4: panelKc is the
// depth of the slab the panels belong to, kc of the rows written (less when a slab is packed piece by piece).
const PACK_PARAMS = 6;
const [SRC, LD, DST, PKC, PANELS, PANEL_KC] = [0, 1, 2, 3, 4, 5];
const [P_LEFT, K_LEFT, S, D, S_ROW, D_ROW, PANEL_BYTES] = [6, 7, 8, 9, 10, 11, 12];
const [R0, T0] = [13, 17]; // v128: four source rows, four half-transposed rows

/**
 * Source row k (at src + k*ld) holds row k of every panel side by side: copy R floats at a time.
 */
function packCopyBody(R: number): number[] {
  const { code, emit } = body();
  emit(w.get(PANEL_KC), w.i32(PAD_ROWS), w.add, w.i32(4 * R), w.mul, w.set(PANEL_BYTES));
  emit(w.get(SRC), w.set(S_ROW), w.get(DST), w.set(D_ROW), w.get(PKC), w.set(K_LEFT));
  emit(w.loop); // over rows k
  emit(w.get(S_ROW), w.set(S), w.get(D_ROW), w.set(D), w.get(PANELS), w.set(P_LEFT));
  emit(w.loop); // over panels
  for (let off = 0; off < 4 * R; off += 16) emit(w.get(D), w.get(S), w.load(off), w.store(off));
  emit(w.get(S), w.i32(4 * R), w.add, w.set(S), w.get(D), w.get(PANEL_BYTES), w.add, w.set(D));
  emit(w.get(P_LEFT), w.i32(1), w.sub, w.tee(P_LEFT), w.brIf(0), w.end);
  emit(w.get(S_ROW), w.get(LD), w.add, w.set(S_ROW), w.get(D_ROW), w.i32(4 * R), w.add, w.set(D_ROW));
  emit(w.get(K_LEFT), w.i32(1), w.sub, w.tee(K_LEFT), w.brIf(0), w.end);
  return code;
}

/**
 * Source row j (at src + j*ld) holds column j of the panels, kc values in a row: transpose 4x4 blocks (four
 * k of four columns) into place. Depth is taken in steps of 4, so a panel may get up to 3 rows past kc:
 * they fall on its padding.
 */
function packTransposeBody(R: number): number[] {
  const { code, emit } = body();
  emit(w.get(PANEL_KC), w.i32(PAD_ROWS), w.add, w.i32(4 * R), w.mul, w.set(PANEL_BYTES));
  emit(w.get(SRC), w.set(S_ROW), w.get(DST), w.set(D_ROW), w.get(PANELS), w.set(P_LEFT));
  emit(w.loop); // over panels
  emit(w.get(S_ROW), w.set(S), w.get(D_ROW), w.set(D), w.get(PKC), w.set(K_LEFT));
  emit(w.loop); // over blocks of 4 k
  for (let quarter = 0; quarter < R / 4; quarter++) {
    for (let i = 0; i < 4; i++) { // rows 4*quarter + i of the panel's source
      emit(w.get(S), w.get(LD), w.i32(4 * quarter + i), w.mul, w.add, w.load(0), w.set(R0 + i));
    }
    emit(w.get(R0), w.get(R0 + 1), w.shuffle([0, 4, 1, 5]), w.set(T0));
    emit(w.get(R0 + 2), w.get(R0 + 3), w.shuffle([0, 4, 1, 5]), w.set(T0 + 1));
    emit(w.get(R0), w.get(R0 + 1), w.shuffle([2, 6, 3, 7]), w.set(T0 + 2));
    emit(w.get(R0 + 2), w.get(R0 + 3), w.shuffle([2, 6, 3, 7]), w.set(T0 + 3));
    for (let k = 0; k < 4; k++) { // row k of the block: lane k of each source row
      const [a, b] = k < 2 ? [T0, T0 + 1] : [T0 + 2, T0 + 3];
      emit(w.get(D), w.get(a), w.get(b), w.shuffle(k % 2 === 0 ? [0, 1, 4, 5] : [2, 3, 6, 7]), w.store(16 * quarter + 4 * R * k));
    }
  }
  emit(w.get(S), w.i32(16), w.add, w.set(S), w.get(D), w.i32(16 * R), w.add, w.set(D));
  emit(w.get(K_LEFT), w.i32(4), w.sub, w.tee(K_LEFT), w.i32(0), w.gtS, w.brIf(0), w.end);
  emit(w.get(S_ROW), w.get(LD), w.i32(R), w.mul, w.add, w.set(S_ROW), w.get(D_ROW), w.get(PANEL_BYTES), w.add, w.set(D_ROW));
  emit(w.get(P_LEFT), w.i32(1), w.sub, w.tee(P_LEFT), w.brIf(0), w.end);
  return code;
}

const PACKS = { packCopyA: packCopyBody(MR), packCopyB: packCopyBody(NR), packTransposeA: packTransposeBody(MR), packTransposeB: packTransposeBody(NR) };

/**
 * copy2d(src, srcStride, dst, dstStride, rows, width), addresses and strides in bytes: `rows` rows of
 * `width` 32-bit values, four at a time, then one by one (as integers: bits are copied as they are).
 */
function copy2dBody(): number[] {
  const [SRC_, SRC_STRIDE, DST_, DST_STRIDE, ROWS, WIDTH] = [0, 1, 2, 3, 4, 5];
  const [S_, D_, LEFT] = [6, 7, 8];
  const { code, emit } = body();
  repeat(emit, ROWS, () => {
    emit(w.get(SRC_), w.set(S_), w.get(DST_), w.set(D_), w.get(WIDTH), w.set(LEFT));
    whileAtLeast(emit, LEFT, 4, () => emit(w.get(D_), w.get(S_), w.load(0), w.store(0), w.get(S_), w.i32(16), w.add, w.set(S_), w.get(D_), w.i32(16), w.add, w.set(D_)));
    whileAtLeast(emit, LEFT, 1, () => emit(w.get(D_), w.get(S_), w.i32Load(0), w.i32Store(0), w.get(S_), w.i32(4), w.add, w.set(S_), w.get(D_), w.i32(4), w.add, w.set(D_)));
    emit(w.get(SRC_), w.get(SRC_STRIDE), w.add, w.set(SRC_), w.get(DST_), w.get(DST_STRIDE), w.add, w.set(DST_));
  });
  return code;
}

/**
 * The module: one exported memory, the kernel `tile` and the four pack functions. `fused`: the kernel's
 * multiply-adds are relaxed SIMD's f32x4.relaxed_madd (Node 22+, current browsers), which x86-64 and ARM
 * engines compile to one fused multiply-add (one rounding instead of two): half the vector operations in
 * the hot loop.
 */
export function gemmModuleBytes(fused = false): Uint8Array {
  const i32s = (n: number): number[] => new Array<number>(n).fill(I32);
  return moduleBytes([
    { name: 'tile', params: i32s(PARAMS), locals: [...i32s(9), ...new Array<number>(11).fill(V128)], code: kernelBody(fused) },
    ...Object.entries(PACKS).map(([name, code]) => ({ name, params: i32s(PACK_PARAMS), locals: [...i32s(7), ...new Array<number>(8).fill(V128)], code })),
    { name: 'copy2d', params: i32s(6), locals: i32s(3), code: copy2dBody() },
    affineRowsFunction(),
  ]);
}

// ---- running it ----

type PackFunction = (src: number, ld: number, dst: number, kc: number, panels: number, panelKc: number) => void;
interface Instance {
  memory: WasmMemory;
  tile: (pa: number, pb: number, pc: number, mPanels: number, nPanels: number, kc: number, ldc: number, overwrite: number) => void;
  packCopyA: PackFunction; packCopyB: PackFunction; packTransposeA: PackFunction; packTransposeB: PackFunction;
  copy2d: (src: number, srcStride: number, dst: number, dstStride: number, rows: number, width: number) => void;
  affineRows: (c: number, ld: number, rows: number, vectors: number, tables: number, tableBytes: number, mode: number) => void;
  heap: Float32Array;
  /**
   * While a product runs, the memory above its regions, offered to its produced and consumed blocks (a
   * convolution's cols and dcols: computed there in place, see colsInModule), which may grow the memory.
   */
  spare?: ModuleRoom;
}

let instance: Instance | null | undefined;
let fusedKernel = false;

/**
 * The kernel, compiled on first use in this thread; null where WebAssembly SIMD is unavailable. The fused
 * one where relaxed SIMD compiles, unless FACENET_WASM_FMA=0 (read by every thread alike, so all threads
 * run the same kernel and results stay bit-identical across thread counts).
 */
function kernel(): Instance | null {
  if (instance !== undefined) return instance && renewHeap(instance);
  const fused = globalThis.process?.env?.FACENET_WASM_FMA !== '0' ? instantiate(gemmModuleBytes(true)) : null;
  const exports = (fused ?? instantiate(gemmModuleBytes())) as Omit<Instance, 'heap'> | null; // null: the TypeScript kernel runs
  fusedKernel = fused !== null;
  instance = exports && { ...exports, heap: new Float32Array(exports.memory.buffer) };
  return instance;
}

export function wasmGemmAvailable(): boolean {
  return kernel() !== null;
}

/** Whether the WebAssembly kernel runs with fused multiply-adds (relaxed SIMD) in this thread. */
export function wasmGemmFused(): boolean {
  return kernel() !== null && fusedKernel;
}

/** k, its heap view renewed if the memory has grown since (a block computed in place may grow it). */
function renewHeap(k: Instance): Instance {
  if (k.heap.buffer !== k.memory.buffer) k.heap = new Float32Array(k.memory.buffer);
  return k;
}

/** Makes the module's memory hold at least `floats` float32 values. */
function reserve(k: Instance, floats: number): void {
  if (reserveBytes(k.memory, floats * 4)) renewHeap(k);
}

/**
 * Images views are copied image by image through the module (imagesBlock) where that beats a memcpy per
 * row: planes under SMALL_PLANE values (rows too short for a native copy to pay), or a block covering at
 * least half of each plane. Scratch room for one image's rows: ROOM_PER_ROW floats per row.
 */
const SMALL_PLANE = 64, ROOM_PER_ROW = 512;

const imagesInPlace = (X: Matrix): boolean =>
  !!X.images && X.ld === X.images.P && X.data instanceof Float32Array && !X.produce && !X.consume;

/**
 * Copies the block rows [r0, r0+rows) x columns [c0, c0+cols) of an images view to (toX) or from heap[at..]
 * (row stride ld), image by image. An image's rows of the block are consecutive planes, so its part of the
 * block lies in one span of memory: one memcpy moves that span to or from heap[scratch..], and copy2d
 * deals it between the plane-by-plane layout and the block's rows. (JavaScript would copy runs of 9 or 64
 * values element by element, or pay for a subarray per row.) Writing part of an image's columns first
 * reads the span, so the values between the block's columns stay as they were. Images whose span would
 * not fit the scratch `room`, or of which the block takes under half a large plane, are copied row by row.
 */
function imagesBlock(k: Instance, X: Matrix, r0: number, rows: number, c0: number, cols: number, at: number, ld: number, toX: boolean, scratch: number, room: number): void {
  const { P, stride } = X.images!, x = X.data as Float32Array;
  let n = Math.floor(c0 / P), p = c0 - n * P;
  for (let j = 0; j < cols; n++, p = 0) {
    const width = Math.min(P - p, cols - j), from = X.offset + n * stride + r0 * P + p, span = (rows - 1) * P + width;
    if (span > room || (P >= SMALL_PLANE && 2 * width < P)) {
      if (toX) writeBlock(X, r0, rows, n * P + p, width, k.heap, at + j, ld);
      else readBlock(X, r0, rows, n * P + p, width, k.heap, at + j, ld);
    } else if (toX) {
      if (width < P) k.heap.set(x.subarray(from, from + span), scratch);
      k.copy2d((at + j) * 4, ld * 4, scratch * 4, P * 4, rows, width);
      x.set(k.heap.subarray(scratch, scratch + span), from);
    } else {
      k.heap.set(x.subarray(from, from + span), scratch);
      k.copy2d(scratch * 4, P * 4, (at + j) * 4, ld * 4, rows, width);
    }
    j += width;
  }
}

/**
 * writeBlock into an images view from any plain block (the threaded GEMM's shared buffer), through the
 * module: rows copied into its memory, then imagesBlock. False (nothing done) when X is not an images view
 * or the kernel is unavailable. Not for use while a GEMM runs on this thread.
 */
export function writeImages(X: Matrix, r0: number, rows: number, c0: number, cols: number, buf: Float32Array, at: number, ld: number): boolean {
  const k = kernel();
  if (!k || !imagesInPlace(X)) return false;
  const scratch = roundUp(rows * cols, 4), room = rows * ROOM_PER_ROW;
  reserve(k, scratch + room);
  for (let r = 0; r < rows; r++) k.heap.set(buf.subarray(at + r * ld, at + r * ld + cols), r * cols);
  imagesBlock(k, X, r0, rows, c0, cols, 0, cols, true, scratch, room);
  return true;
}

/**
 * Copies rows [r0, r0+rows) x columns [c0, c0+cols) of a stored matrix into heap[at..] with row stride ld
 * (a memcpy per row, or per plane of an images view, or imagesBlock), zeroing the rest of each row and the
 * rows up to rowsPad: zeros in the padding keep the kernel's unused lanes finite (and out of denormal slow
 * paths).
 */
function stage(k: Instance, X: Matrix, r0: number, rows: number, c0: number, cols: number, at: number, ld: number, rowsPad: number, scratch: number, room: number): void {
  if (imagesInPlace(X)) imagesBlock(k, X, r0, rows, c0, cols, at, ld, false, scratch, room);
  else readBlock(X, r0, rows, c0, cols, k.heap, at, ld, k.spare);
  const heap = renewHeap(k).heap;
  if (cols < ld) for (let r = 0; r < rows; r++) heap.fill(0, at + r * ld + cols, at + (r + 1) * ld);
  if (rows < rowsPad) heap.fill(0, at + rows * ld, at + rowsPad * ld);
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Whether X is a plain float32 matrix of rows `width` apart: all its rows one run of memory. */
const isOneRun = (X: Matrix, width: number): boolean =>
  X.ld === width && !X.images && !X.produce && !X.consume && X.data instanceof Float32Array;

/**
 * Packs depth [k0, k0+kc) x panel columns [i0, i0+width) of an operand into R-wide panels at heap[at..]
 * (panel-major, then k, then the panel's R values; columns past width are zeros), through the staging
 * area at heap[stagingAt..], or from the image in `planes` (see PlaneStage) where one is given.
 * op(A)'s panel columns are its rows (R = MR), op(B)'s its columns (R = NR).
 * When the stored rows run along the depth (A transposed, B not), each stored row is a row of every
 * panel and is dealt out as is; otherwise each stored row is one panel column, transposed into place.
 */
function packPanels(
  k: Instance, X: Matrix, R: number, depthInRows: boolean, k0: number, kc: number, i0: number, width: number, at: number,
  stagingAt: number, scratch: number, room: number, planes: PlaneStage | null,
): void {
  const widthPad = roundUp(width, R);
  if (depthInRows) {
    stage(k, X, k0, kc, i0, width, stagingAt, widthPad, kc, scratch, room);
    (R === MR ? k.packCopyA : k.packCopyB)(stagingAt * 4, widthPad * 4, at * 4, kc, widthPad / R, kc);
  } else if (planes) packFromPlanes(k, X, R, k0, kc, i0, width, at, planes);
  else {
    const ld = roundUp(kc, 4);
    stage(k, X, i0, width, k0, kc, stagingAt, ld, widthPad, scratch, room);
    (R === MR ? k.packTransposeA : k.packTransposeB)(stagingAt * 4, ld * 4, at * 4, kc, widthPad / R, kc);
  }
}

/**
 * Room in the module for one image's rows of an images view packed the other way round (its depth runs
 * along its columns: a filter gradient's dy, a 1x1 convolution's input in its filter gradient), and which
 * rows of which image it holds. Those rows are consecutive planes, one run of memory, so each image is
 * copied in once (one memcpy) and the slabs are packed straight from there, piece by piece at image
 * boundaries. Staged slab by slab instead, planes wider than a slab took a native copy per row and slab:
 * measured ~3x the time per value of copying whole planes (1225-value planes, 256-value slabs).
 */
interface PlaneStage { at: number; image: number; i0: number; width: number }

/**
 * Planes of at least this many values are packed through a PlaneStage (smaller ones would make a pack call
 * for every few rows of depth), if their image's rows fit in PLANE_STAGE_FLOATS.
 */
const STAGED_PLANE = 64, PLANE_STAGE_FLOATS = 1 << 20;

/** Floats a PlaneStage needs for rows of an images view packed R wide (0: not staged by planes). */
function planeStageFloats(X: Matrix, depthInRows: boolean, rows: number, R: number): number {
  if (depthInRows || !imagesInPlace(X) || X.images!.P < STAGED_PLANE) return 0;
  const floats = roundUp(rows, R) * X.images!.P + 4; // 4: the pack reads up to 3 values past a row's end
  return floats <= PLANE_STAGE_FLOATS ? floats : 0;
}

/** Counts the slabs packed from planes, for the tests. */
export const planeStaged = { slabs: 0 };

function packFromPlanes(k: Instance, X: Matrix, R: number, k0: number, kc: number, i0: number, width: number, at: number, stage: PlaneStage): void {
  const { P, stride } = X.images!, x = X.data as Float32Array, widthPad = roundUp(width, R);
  const pack = R === MR ? k.packTransposeA : k.packTransposeB;
  planeStaged.slabs++;
  for (let depth = k0; depth < k0 + kc;) {
    const image = Math.floor(depth / P), p = depth - image * P, length = Math.min(P - p, k0 + kc - depth);
    if (stage.image !== image || stage.i0 !== i0 || stage.width !== width) {
      const from = X.offset + image * stride + i0 * P;
      k.heap.set(x.subarray(from, from + width * P), stage.at);
      k.heap.fill(0, stage.at + width * P, stage.at + widthPad * P + 4); // zero panel columns past width
      stage.image = image; stage.i0 = i0; stage.width = width;
    }
    // Rows depth - k0 .. of every panel. A piece whose length is not a multiple of 4 writes up to 3 rows
    // more: the next piece's first rows (written next) or the panel's padding.
    pack((stage.at + p) * 4, P * 4, (at + (depth - k0) * R) * 4, length, widthPad / R, kc);
    depth += length;
  }
}

/**
 * C (+)= op(A) · op(B) for float32 C, blocked like gemm_fast.ts. op(A) is packed once, one KC-deep slab
 * after another (each right before its use when there is one block of columns); for each block of NC
 * columns a tile in the module's memory accumulates every slab (the first slab overwrites it, or it starts
 * as a copy of C when accumulating) and is copied into C.
 * Returns false (doing nothing) where the kernel is unavailable.
 */
export function gemmWasm(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): boolean {
  const k = kernel();
  if (!k || !(C.data instanceof Float32Array) || (K === 0 && C.epilogue)) return false; // the latter: zeros mapped, by gemmPlain
  if (K === 0 && !accumulate) zeroMatrix(C, M, N);
  if (M === 0 || N === 0 || K === 0) return true;
  const mPad = roundUp(M, MR);
  const blockWidth = C.consume ? CONSUMED_BLOCK : NC; // a consumed C is handed over in the same blocks on any thread count
  const ncMax = Math.min(blockWidth, roundUp(N, NR)), kcMax = Math.min(KC, K), kcPad = roundUp(kcMax, 4);
  // Blocks of columns are computed `group` at a time side by side in the C region (rows `ldMax` apart) and
  // written out together: C's rows go out one copy each where its planes are large (imagesBlock), so a
  // product with few rows (a detector's early layers on a photo) made a copy per row of every 512-column
  // block. A consumed C is handed over block by block.
  const group = C.consume ? 1 : Math.max(1, Math.floor(C_GROUP_FLOATS / (mPad * blockWidth)));
  const ldMax = Math.min(group * blockWidth, roundUp(N, NR));
  // With one block of columns, each slab of op(A) is used once: it is packed right before its use, into
  // room for one slab that stays in the cache, instead of all of op(A) packed first (written out to
  // memory and read back: a batch-1 convolution's filters are most of its memory traffic).
  const slabAtATime = blockEnd(C, 0, N, blockWidth) === N;
  // Layout in floats: [op(A), all of it as slabs of panels or one slab][B panels][C: a group of blocks][staging][scratch
  // for imagesBlock], each region 16-byte aligned. Slab s of op(A) starts s full slabs in.
  const aSlab = (mPad / MR) * panelFloats(KC, MR), slabs = slabAtATime ? 1 : Math.ceil(K / KC);
  const pa = 0, pb = pa + slabs * (mPad / MR) * panelFloats(kcMax, MR), pc = pb + (ncMax / NR) * panelFloats(kcMax, NR), staging = pc + mPad * ldMax;
  const scratch = staging + Math.max(mPad, ncMax) * Math.max(kcPad, ncMax), room = Math.max(mPad, KC) * ROOM_PER_ROW;
  // A stored [M, K] in one run (a convolution's filters) is copied in whole (after the scratch), with
  // zero rows up to mPad: one memcpy, where staging it took a call per row and slab, which cost more than
  // the copying (most of a batch-1 convolution's time outside the kernel). Then slabs pack from there.
  const aWhole = !transA && isOneRun(A, K) ? scratch + room : -1;
  // Then room for an image of A's and of B's rows, where they are packed from whole planes (PlaneStage).
  const aPlanes = planeStageFloats(A, transA, M, MR), bPlanes = planeStageFloats(B, !transB, ncMax, NR);
  const aStageAt = roundUp(aWhole >= 0 ? aWhole + mPad * K + 4 : scratch + room, 4), bStageAt = roundUp(aStageAt + aPlanes, 4);
  const aStage = aPlanes > 0 ? { at: aStageAt, image: -1, i0: 0, width: 0 } : null;
  const bStage = bPlanes > 0 ? { at: bStageAt, image: -1, i0: 0, width: 0 } : null;
  // Then C's epilogue tables, if any: scale, shift and slopes, mPad floats each.
  const ep = C.epilogue, epAt = roundUp(bStageAt + bPlanes, 4), end = ep ? epAt + 3 * mPad : epAt;
  try {
    reserve(k, end);
  } catch {
    return false; // the module's memory cannot grow that far (4 GiB at most): the TypeScript kernel takes it
  }
  if (ep) {
    k.heap.set(ep.scale.subarray(0, M), epAt);
    k.heap.set(ep.shift.subarray(0, M), epAt + mPad);
    if (ep.slopes) k.heap.set(ep.slopes.subarray(0, M), epAt + 2 * mPad);
    else k.heap.fill(0, epAt + 2 * mPad, epAt + 2 * mPad + M);
  }
  if (aWhole >= 0) {
    k.heap.set((A.data as Float32Array).subarray(A.offset, A.offset + M * K), aWhole);
    k.heap.fill(0, aWhole + M * K, aWhole + mPad * K + 4); // and 4 floats read past the last row's end
  }
  k.spare = { memory: k.memory, from: end * 4 }; // a new object each product: see colsInModule's tables
  const packA = (k0: number, kc: number, at: number): void => {
    if (aWhole >= 0) k.packTransposeA((aWhole + k0) * 4, K * 4, at * 4, kc, mPad / MR, kc);
    else packPanels(k, A, MR, transA, k0, kc, 0, M, at, staging, scratch, room, aStage);
  };
  if (!slabAtATime) for (let k0 = 0; k0 < K; k0 += KC) packA(k0, Math.min(KC, K - k0), pa + (k0 / KC) * aSlab);
  for (let g0 = 0; g0 < N;) {
    const gEnd = C.consume ? blockEnd(C, g0, N, blockWidth) : Math.min(N, g0 + group * blockWidth), width = gEnd - g0, ld = roundUp(width, NR);
    if (accumulate) {
      if (imagesInPlace(C)) imagesBlock(k, C, 0, M, g0, width, pc, ld, false, scratch, room);
      else readBlock(C, 0, M, g0, width, k.heap, pc, ld);
      k.heap.fill(0, pc + M * ld, pc + mPad * ld);
    }
    for (let j0 = g0; j0 < gEnd; j0 += blockWidth) { // each block's columns at j0 - g0 in the region
      const nc = Math.min(blockWidth, gEnd - j0), ncPad = roundUp(nc, NR);
      for (let k0 = 0; k0 < K; k0 += KC) {
        const kc = Math.min(KC, K - k0);
        if (slabAtATime) packA(k0, kc, pa);
        packPanels(k, B, NR, !transB, k0, kc, j0, nc, pb, staging, scratch, room, bStage);
        k.tile((pa + (slabAtATime ? 0 : (k0 / KC) * aSlab)) * 4, pb * 4, (pc + j0 - g0) * 4, mPad / MR, ncPad / NR, kc, ld * 4, k0 === 0 && !accumulate ? 1 : 0);
      }
    }
    if (ep) k.affineRows(pc * 4, ld * 4, M, ld / 4, epAt * 4, mPad * 4, 1 + AFFINE_ACTIVATIONS.indexOf(ep.activation));
    if (imagesInPlace(C)) imagesBlock(k, C, 0, M, g0, width, pc, ld, true, scratch, room);
    else writeBlock(C, 0, M, g0, width, k.heap, pc, ld, k.spare);
    renewHeap(k);
    g0 = gEnd;
  }
  k.spare = undefined;
  return true;
}
