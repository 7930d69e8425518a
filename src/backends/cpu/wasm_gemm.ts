/**
 * A WebAssembly SIMD kernel for float32 GEMM, written out byte by byte at load time: no toolchain, no
 * dependency, about a kilobyte of our own code. JavaScript cannot reach the CPU's vector units; WebAssembly's
 * 128-bit SIMD can, and the blocked GEMM spends nearly all its time in one small loop, so that loop is the
 * only thing written in WebAssembly. Packing stays in TypeScript (gemm_fast.ts's layout, with 8-column B
 * panels), writing straight into the module's memory.
 *
 * The microkernel keeps a 4x8 tile of C in eight f32x4 registers; each step of k broadcasts four values of
 * the A panel and multiplies them with two vectors of the B panel. Every element of C is summed over k in
 * order, in float32, the same way whichever thread computes it and wherever its column falls, so results
 * stay bit-identical across thread counts. (The pure-TypeScript kernel sums in float64; the two agree to
 * float32 rounding, which the tests check.)
 */
import type { Matrix } from './gemm.js';

// The few WebAssembly globals used here (the ES2022 lib declares none, and the DOM lib would bring the rest).
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};
interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }

export const MR = 4;
export const NR = 8;
const KC = 256, NC = 512;

// ---- a minimal WebAssembly binary writer: just what the kernel needs ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

const I32 = 0x7f, V128 = 0x7b;
const SIMD = 0xfd;
const w = {
  loop: [0x03, 0x40], if: [0x04, 0x40], else: [0x05], end: [0x0b], brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (local: number) => [0x20, ...uleb(local)], set: (local: number) => [0x21, ...uleb(local)], tee: (local: number) => [0x22, ...uleb(local)],
  i32: (v: number) => [0x41, ...sleb(v)], add: [0x6a], sub: [0x6b], mul: [0x6c],
  // memarg = log2(alignment), offset
  load: (offset: number) => [SIMD, 0x00, 4, ...uleb(offset)],
  store: (offset: number) => [SIMD, 0x0b, 4, ...uleb(offset)],
  load32Splat: (offset: number) => [SIMD, 0x09, 2, ...uleb(offset)],
  f32x4Add: [SIMD, ...uleb(0xe4)], f32x4Mul: [SIMD, ...uleb(0xe6)],
  zero: [SIMD, 0x0c, ...new Array<number>(16).fill(0)],
};

// Parameters (bytes for addresses): packed A panels, packed B panels, C tile, A panels, B panels, depth,
// C row stride, and whether to overwrite the tile (first slab) rather than add to it.
const PARAMS = 8;
const [PA, PB, PC, M_PANELS, N_PANELS, KC_, LDC, OVERWRITE] = [0, 1, 2, 3, 4, 5, 6, 7];
// i32 locals, then v128 locals.
const [JP, IP, AP, BP, K, CROW, B_START, C_COL, ROW] = [8, 9, 10, 11, 12, 13, 14, 15, 16];
const [B0, B1, A, ACC] = [17, 18, 19, 20]; // ACC..ACC+7: row r of the tile is ACC+2r (columns 0-3), ACC+2r+1 (4-7)

/** tile[C] (+)= A panel x B panel over kc steps, for every (A panel, B panel) pair. */
function kernelBody(): number[] {
  const code: number[] = [];
  const emit = (...parts: number[][]): void => { for (const p of parts) code.push(...p); };
  const decrementAndLoop = (local: number): void => emit(w.get(local), w.i32(1), w.sub, w.tee(local), w.brIf(0));
  emit(w.get(PB), w.set(B_START), w.get(PC), w.set(C_COL), w.get(N_PANELS), w.set(JP));
  emit(w.loop); // over B panels (8 columns of C each)
  emit(w.get(PA), w.set(AP), w.get(C_COL), w.set(CROW), w.get(M_PANELS), w.set(IP));
  emit(w.loop); // over A panels (4 rows of C each)
  for (let r = 0; r < 8; r++) emit(w.zero, w.set(ACC + r));
  emit(w.get(B_START), w.set(BP), w.get(KC_), w.set(K));
  emit(w.loop); // over k: the hot loop
  emit(w.get(BP), w.load(0), w.set(B0), w.get(BP), w.load(16), w.set(B1));
  for (let r = 0; r < MR; r++) {
    emit(w.get(AP), w.load32Splat(4 * r), w.set(A));
    emit(w.get(ACC + 2 * r), w.get(A), w.get(B0), w.f32x4Mul, w.f32x4Add, w.set(ACC + 2 * r));
    emit(w.get(ACC + 2 * r + 1), w.get(A), w.get(B1), w.f32x4Mul, w.f32x4Add, w.set(ACC + 2 * r + 1));
  }
  emit(w.get(AP), w.i32(4 * MR), w.add, w.set(AP), w.get(BP), w.i32(4 * NR), w.add, w.set(BP));
  decrementAndLoop(K);
  emit(w.end);
  for (let r = 0; r < MR; r++) { // write or add the registers into the tile, row by row
    emit(w.get(CROW), ...(r > 0 ? [w.get(LDC), w.i32(r), w.mul, w.add] : []), w.set(ROW));
    emit(w.get(OVERWRITE), w.if);
    for (const half of [0, 1]) emit(w.get(ROW), w.get(ACC + 2 * r + half), w.store(16 * half));
    emit(w.else);
    for (const half of [0, 1]) emit(w.get(ROW), w.get(ROW), w.load(16 * half), w.get(ACC + 2 * r + half), w.f32x4Add, w.store(16 * half));
    emit(w.end);
  }
  emit(w.get(CROW), w.get(LDC), w.i32(MR), w.mul, w.add, w.set(CROW));
  decrementAndLoop(IP);
  emit(w.end);
  emit(w.get(BP), w.set(B_START), w.get(C_COL), w.i32(4 * NR), w.add, w.set(C_COL));
  decrementAndLoop(JP);
  emit(w.end);
  return code;
}

/** The module: one exported memory and one exported function, `tile`. */
export function gemmModuleBytes(): Uint8Array {
  const type = section(1, vec([[0x60, ...vec(new Array<number[]>(PARAMS).fill([I32])), ...vec([])]]));
  const func = section(3, vec([uleb(0)]));
  const memory = section(5, vec([[0x00, ...uleb(1)]]));
  const exports = section(7, vec([[...name('memory'), 0x02, 0], [...name('tile'), 0x00, 0]]));
  const body = [...vec([[...uleb(9), I32], [...uleb(11), V128]]), ...kernelBody(), ...w.end];
  const code = section(10, vec([[...uleb(body.length), ...body]]));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...func, ...memory, ...exports, ...code]);
}

// ---- running it ----

interface Instance {
  memory: WasmMemory;
  tile: (pa: number, pb: number, pc: number, mPanels: number, nPanels: number, kc: number, ldc: number, overwrite: number) => void;
  heap: Float32Array;
}

let instance: Instance | null | undefined;

/** The kernel, compiled on first use in this thread; null where WebAssembly SIMD is unavailable. */
function kernel(): Instance | null {
  if (instance !== undefined) return instance;
  instance = null;
  try {
    const bytes = gemmModuleBytes();
    if (typeof WebAssembly === 'object' && WebAssembly.validate(bytes)) {
      const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Omit<Instance, 'heap'>;
      instance = { ...exports, heap: new Float32Array(exports.memory.buffer) };
    }
  } catch {
    instance = null; // no WebAssembly (or no SIMD) here: the TypeScript kernel runs
  }
  return instance;
}

export function wasmGemmAvailable(): boolean {
  return kernel() !== null;
}

/** Makes the module's memory hold at least `floats` float32 values. */
function reserve(k: Instance, floats: number): Float32Array {
  const bytes = floats * 4;
  if (k.memory.buffer.byteLength < bytes) {
    k.memory.grow(Math.ceil((bytes - k.memory.buffer.byteLength) / 65536));
    k.heap = new Float32Array(k.memory.buffer);
  }
  return k.heap;
}

/**
 * Packs op(A) rows [0, M) x depth [k0, k0+kc) into MR-row panels at heap[at..]: panel-major, then k, then
 * the panel's MR rows. Rows past M are zeros.
 */
function packA(A: Matrix, transA: boolean, M: number, k0: number, kc: number, heap: Float32Array, at: number): void {
  const a = A.data, lda = A.ld, off = A.offset;
  for (let i0 = 0, p = at; i0 < M; i0 += MR, p += MR * kc) {
    const rows = Math.min(MR, M - i0);
    if (rows < MR) heap.fill(0, p, p + MR * kc);
    for (let i = 0; i < rows; i++) {
      // op(A)[i0+i, k] is a[(i0+i)*lda + k], or a[k*lda + i0+i] when A is stored transposed.
      const step = transA ? lda : 1;
      for (let k = 0, src = off + (transA ? k0 * lda + i0 + i : (i0 + i) * lda + k0), dst = p + i; k < kc; k++, src += step, dst += MR) heap[dst] = a[src]!;
    }
  }
}

/** Packs op(B) depth [k0, k0+kc) x columns [j0, j0+nc) into NR-column panels at heap[at..]; columns past nc are zeros. */
function packB(B: Matrix, transB: boolean, k0: number, kc: number, j0: number, nc: number, heap: Float32Array, at: number): void {
  const b = B.data, ldb = B.ld, off = B.offset;
  const full = Math.floor(nc / NR) * NR;
  if (full < nc) heap.fill(0, at + (full / NR) * NR * kc, at + Math.ceil(nc / NR) * NR * kc);
  if (transB) {
    // Column j of op(B) is row j of the stored matrix: read it contiguously, write with stride NR.
    for (let j = 0; j < nc; j++) {
      const panel = at + Math.floor(j / NR) * NR * kc + (j % NR);
      for (let k = 0, src = off + (j0 + j) * ldb + k0, dst = panel; k < kc; k++, src++, dst += NR) heap[dst] = b[src]!;
    }
    return;
  }
  // Row k of op(B) is contiguous: read it once, dealing 8 columns into each panel (twice as fast as
  // walking down one panel's column block, which strides over rows).
  for (let k = 0; k < kc; k++) {
    const src = off + (k0 + k) * ldb + j0;
    let dst = at + k * NR;
    for (let j = 0; j < full; j += NR, dst += NR * kc) {
      heap[dst] = b[src + j]!; heap[dst + 1] = b[src + j + 1]!; heap[dst + 2] = b[src + j + 2]!; heap[dst + 3] = b[src + j + 3]!;
      heap[dst + 4] = b[src + j + 4]!; heap[dst + 5] = b[src + j + 5]!; heap[dst + 6] = b[src + j + 6]!; heap[dst + 7] = b[src + j + 7]!;
    }
    for (let j = full; j < nc; j++) heap[dst + j - full] = b[src + j]!;
  }
}

/**
 * C (+)= op(A) · op(B) for float32 C, blocked like gemm_fast.ts. op(A) is packed once, one KC-deep slab
 * after another; then for each block of NC columns a zeroed tile accumulates every slab in the module's
 * memory (the first slab overwrites it) and is then added into C, or copied when not accumulating. Returns false (doing nothing) where the kernel is unavailable.
 */
export function gemmWasm(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Matrix, B: Matrix, C: Matrix, accumulate: boolean): boolean {
  const k = kernel();
  if (!k || !(C.data instanceof Float32Array)) return false;
  if (K === 0 && !accumulate) for (let i = 0; i < M; i++) C.data.fill(0, C.offset + i * C.ld, C.offset + i * C.ld + N);
  if (M === 0 || N === 0 || K === 0) return true;
  const mPad = Math.ceil(M / MR) * MR;
  const ncMax = Math.min(NC, Math.ceil(N / NR) * NR), kcMax = Math.min(KC, K);
  // Layout in floats: [all of op(A), as slabs of panels][B panels][C tile]; every region starts on 16 bytes.
  const pa = 0, pb = pa + mPad * K, pc = pb + ncMax * kcMax;
  let heap: Float32Array;
  try {
    heap = reserve(k, pc + mPad * ncMax);
  } catch {
    return false; // the module's memory cannot grow that far (4 GiB at most): the TypeScript kernel takes it
  }
  for (let k0 = 0; k0 < K; k0 += KC) packA(A, transA, M, k0, Math.min(KC, K - k0), heap, pa + mPad * k0);
  const c = C.data;
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nc = Math.min(NC, N - j0), ncPad = Math.ceil(nc / NR) * NR;
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = Math.min(KC, K - k0);
      packB(B, transB, k0, kc, j0, nc, heap, pb);
      k.tile((pa + mPad * k0) * 4, pb * 4, pc * 4, mPad / MR, ncPad / NR, kc, ncPad * 4, k0 === 0 ? 1 : 0);
    }
    for (let i = 0; i < M; i++) {
      const row = C.offset + i * C.ld + j0, t = pc + i * ncPad;
      if (accumulate) for (let j = 0; j < nc; j++) c[row + j]! += heap[t + j]!;
      else c.set(heap.subarray(t, t + nc), row);
    }
  }
  return true;
}
