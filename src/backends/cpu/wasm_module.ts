/**
 * What the WebAssembly pass modules share (wasm_planes.ts: per-channel and elementwise passes;
 * wasm_pool.ts: max and L2 pooling; wasm_lrn.ts: LRN; wasm_cols.ts: im2col and col2im): each is a small module of its own, emitted by
 * wasm_writer.ts and instantiated on first use, with its own memory, seen as float32 and float64 views
 * that are renewed when it grows (passModuleOver: over another module's memory instead). One switch turns
 * them all off (the TypeScript loops then run).
 */
import { instantiate, moduleBytes, reserveBytes, type WasmFunction, type WasmMemory } from './wasm_writer.js';

export type Fn = (...args: number[]) => void;
/** A module's memory and its views. */
export interface Memory { memory: WasmMemory; heap: Float32Array; heap64: Float64Array }
export type PassModule<Name extends string> = Memory & Record<Name, Fn>;

let enabled = globalThis.process?.env?.FACENET_PLANES !== 'js';

/** Turns the WebAssembly passes off (false: the TypeScript loops run everywhere) or back on; for tests. */
export function setWasmPlanes(on: boolean): void {
  enabled = on;
}

/** The module made of `functions`, instantiated on the first call; null where it cannot run or is switched off. */
export function passModule<Name extends string>(functions: () => WasmFunction[]): () => PassModule<Name> | null {
  let instance: PassModule<Name> | null | undefined;
  return () => {
    if (!enabled) return null;
    if (instance === undefined) {
      const exports = instantiate(moduleBytes(functions())) as (Record<Name, Fn> & { memory: WasmMemory }) | null;
      instance = exports && withViews(exports, exports.memory);
    }
    return instance;
  };
}

/**
 * The same functions as modules over other modules' memories (imported): one instance per memory, made on
 * its first call, so that they work on data another module left in its memory, in place. Null where they
 * cannot run or are switched off. The views are renewed on each call where that memory has grown since.
 */
export function passModuleOver<Name extends string>(functions: () => WasmFunction[]): (memory: WasmMemory) => PassModule<Name> | null {
  const instances = new WeakMap<WasmMemory, PassModule<Name> | null>();
  let bytes: Uint8Array | undefined;
  return (memory) => {
    if (!enabled) return null;
    let instance = instances.get(memory);
    if (instance === undefined) {
      const exports = instantiate(bytes ??= moduleBytes(functions(), { importedMemory: true }), memory) as Record<Name, Fn> | null;
      instance = exports && withViews(exports, memory);
      instances.set(memory, instance);
    }
    if (instance && instance.heap.buffer !== memory.buffer) renewViews(instance);
    return instance;
  };
}

/** A module's functions with its memory and views of it. */
function withViews<Name extends string>(functions: Record<Name, Fn>, memory: WasmMemory): PassModule<Name> {
  const k = { ...functions, memory } as PassModule<Name>;
  renewViews(k);
  return k;
}

function renewViews(k: Memory): void {
  k.heap = new Float32Array(k.memory.buffer);
  k.heap64 = new Float64Array(k.memory.buffer);
}

/** Makes the module's memory hold `bytes`, renewing the views when it grows. */
export function reserve(k: Memory, bytes: number): void {
  if (reserveBytes(k.memory, bytes)) renewViews(k);
}

export const isF32 = (...arrays: ArrayLike<number>[]): boolean => arrays.every((a) => a instanceof Float32Array);

/** Float32 values per chunk buffer: 64 kB, so a few buffers and the tables stay in the L2 cache. */
export const CHUNK = 16384;

/** Bytes of a region of n floats, padded to 16 bytes with `slack` more (for the vector reads past its end). */
export const regionBytes = (floats: number, slack = 0): number => Math.ceil((floats * 4 + slack) / 16) * 16;

/** Float64 constants as int32 pairs (a pass's integers carry them to the workers exactly), and back. */
export const float64Words = (...values: number[]): number[] => Array.from(new Int32Array(Float64Array.from(values).buffer));
export const fromFloat64Words = (ints: number[]): number[] => Array.from(new Float64Array(Int32Array.from(ints).buffer));
