/**
 * A minimal WebAssembly binary writer: just what our kernels need (wasm_gemm.ts, wasm_planes.ts). Kernels
 * are written as arrays of opcodes at load time and compiled with the platform's WebAssembly: no
 * toolchain, no dependency, our own bytes. Each module has one memory, exported as `memory`, and exports
 * its functions by name. The memory is the module's own, or one it imports (`env.memory`): another
 * module's, whose data its functions then work on in place.
 */

// The few WebAssembly globals used here (the ES2022 lib declares none, and the DOM lib would bring the rest).
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
};
export interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }

export function uleb(n: number): number[] {
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

export const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;
const SIMD = 0xfd;
const simd = (op: number, ...rest: number[]): number[] => [SIMD, ...uleb(op), ...rest];

/** Opcodes. Memory accesses take a byte offset; alignment is the natural one. */
export const w = {
  block: [0x02, 0x40], loop: [0x03, 0x40], if: [0x04, 0x40], else: [0x05], end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)], brIf: (depth: number) => [0x0d, ...uleb(depth)], select: [0x1b],
  get: (local: number) => [0x20, ...uleb(local)], set: (local: number) => [0x21, ...uleb(local)], tee: (local: number) => [0x22, ...uleb(local)],
  i32: (v: number) => [0x41, ...sleb(v)], add: [0x6a], sub: [0x6b], mul: [0x6c], and: [0x71], shrU: [0x76],
  eqz: [0x45], eq: [0x46], ltS: [0x48], ltU: [0x49], gtS: [0x4a], div: [0x6d], divU: [0x6e], remU: [0x70],
  f32Load: (offset: number) => [0x2a, 2, ...uleb(offset)], f32Store: (offset: number) => [0x38, 2, ...uleb(offset)],
  f64Load: (offset: number) => [0x2b, 3, ...uleb(offset)], f64Store: (offset: number) => [0x39, 3, ...uleb(offset)],
  i32Load: (offset: number) => [0x28, 2, ...uleb(offset)], i32Store: (offset: number) => [0x36, 2, ...uleb(offset)],
  i32Or: [0x72],
  f32Add: [0x92], f32Sub: [0x93], f32Mul: [0x94], f32Ne: [0x5c], f32Gt: [0x5e], f32Const0: [0x43, 0, 0, 0, 0],
  f64Add: [0xa0], f64Mul: [0xa2], f64Div: [0xa3], f64Sqrt: [0x9f], f64Ne: [0x62], f32Eq: [0x5b], f32FromF64: [0xb6], f64FromF32: [0xbb], i32FromF32Bits: [0xbc], f64Const0: [0x44, 0, 0, 0, 0, 0, 0, 0, 0],
  load: (offset: number) => simd(0x00, 4, ...uleb(offset)),
  store: (offset: number) => simd(0x0b, 4, ...uleb(offset)),
  load32Splat: (offset: number) => simd(0x09, 2, ...uleb(offset)),
  // i8x16.shuffle picking four 32-bit lanes of (a, b): lanes 0-3 are a's, 4-7 are b's.
  shuffle: (lanes: number[]) => simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])),
  zero: simd(0x0c, ...new Array<number>(16).fill(0)),
  /** v128.const i32x4 (v, v, v, v) */
  i32x4Const: (v: number) => simd(0x0c, ...[0, 1, 2, 3].flatMap(() => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff])),
  f32x4Splat: simd(0x13), f64x2Lane: (lane: number) => simd(0x21, lane), f64x2FromF32Low: simd(0x5f), f64x2Add: simd(0xf0),
  f64x2Splat: simd(0x14), f64x2Sub: simd(0xf1), f64x2Mul: simd(0xf2), f64x2Div: simd(0xf3), f64x2Sqrt: simd(0xef),
  /** f32x4.demote_f64x2_zero: the two float64 lanes rounded to float32 in lanes 0-1, zeros above */
  f32x4FromF64: simd(0x5e),
  f32x4Add: simd(0xe4), f32x4Sub: simd(0xe5), f32x4Mul: simd(0xe6), f32x4Ne: simd(0x42),
  /** f32x4.relaxed_madd(a, b, c) = a * b + c, fused or not as the engine decides (relaxed SIMD) */
  f32x4RelaxedMadd: simd(0x105),
  i32x4GtS: simd(0x3b), and128: simd(0x4e), or128: simd(0x50), f32x4Gt: simd(0x44),
  i32x4Splat: simd(0x11), i32x4Add: simd(0xae), i32x4Mul: simd(0xb5), i32x4Eq: simd(0x37), i32x4AllTrue: simd(0xa3),
  i32x4Lane: (lane: number) => simd(0x1b, lane), geS: [0x4e],
  /** v128.const i32x4 (a, b, c, d) */
  i32x4Lanes: (...lanes: number[]) => simd(0x0c, ...lanes.flatMap((v) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff])),
  v128Load: (offset: number) => simd(0x00, 0, ...uleb(offset)), // alignment 1: for unaligned addresses
  v128Store: (offset: number) => simd(0x0b, 0, ...uleb(offset)),
  /** v128.bitselect(a, b, mask): a where mask bits are set, else b */
  bitselect: simd(0x52),
};

export type Emit = (...parts: number[][]) => void;

/** Collects a function body: emit(...parts) appends opcodes. */
export function body(): { code: number[]; emit: Emit } {
  const code: number[] = [];
  return { code, emit: (...parts) => { for (const p of parts) code.push(...p); } };
}

/** A guarded countdown loop: runs `inner` `count` times (count is a local, which it consumes). */
export function repeat(emit: Emit, count: number, inner: () => void): void {
  emit(w.block, w.get(count), w.eqz, w.brIf(0), w.loop);
  inner();
  emit(w.get(count), w.i32(1), w.sub, w.tee(count), w.brIf(0), w.end, w.end);
}

/** while (local >= step) { inner(); local -= step; } */
export function whileAtLeast(emit: Emit, local: number, step: number, inner: () => void): void {
  emit(w.block, w.loop, w.get(local), w.i32(step - 1), w.gtS, w.eqz, w.brIf(1));
  inner();
  emit(w.get(local), w.i32(step), w.sub, w.set(local), w.br(0), w.end, w.end);
}

export interface WasmFunction {
  name: string;
  /** Parameter types (I32, F64, V128). */
  params: number[];
  /** Local types after the parameters, in order. */
  locals: number[];
  code: number[];
}

/**
 * A module of the given functions (none returns a value) and one exported memory of one page to start:
 * its own, or with `importedMemory` one given at instantiation as `env.memory`.
 */
export function moduleBytes(functions: WasmFunction[], options: { importedMemory?: boolean } = {}): Uint8Array {
  const type = section(1, vec(functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec([])])));
  const limits = [0x00, ...uleb(1)]; // no maximum, one page at least
  const imports = options.importedMemory ? section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]])) : [];
  const func = section(3, vec(functions.map((_, i) => uleb(i))));
  const memory = options.importedMemory ? [] : section(5, vec([limits]));
  const exports = section(7, vec([[...name('memory'), 0x02, 0], ...functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)])]));
  const code = section(10, vec(functions.map((f) => {
    const runs: number[][] = []; // locals as (count, type) runs
    for (const t of f.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]!++;
      else runs.push([1, t]);
    }
    const all = [...vec(runs.map(([n, t]) => [...uleb(n!), t!])), ...f.code, ...w.end];
    return [...uleb(all.length), ...all];
  })));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imports, ...func, ...memory, ...exports, ...code]);
}

/** Compiles a module here (over `memory`, for a module that imports one); null where WebAssembly (or its SIMD) is unavailable. */
export function instantiate(bytes: Uint8Array, memory?: WasmMemory): Record<string, unknown> | null {
  try {
    if (typeof WebAssembly !== 'object' || !WebAssembly.validate(bytes)) return null;
    return new WebAssembly.Instance(new WebAssembly.Module(bytes), memory ? { env: { memory } } : undefined).exports;
  } catch {
    return null;
  }
}

/** Grows memory to at least `bytes`; returns whether it grew (views on the old buffer are then stale). */
export function reserveBytes(memory: WasmMemory, bytes: number): boolean {
  if (memory.buffer.byteLength >= bytes) return false;
  memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
  return true;
}
