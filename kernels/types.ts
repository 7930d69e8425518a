/**
 * What a gpu.js kernel sees: `this.thread.x` is the flat index of the output element it computes, and
 * `this.constants` holds the shapes and attributes it was compiled for (compile-time constants, so loop
 * bounds are fixed in the shader and never cut at gpu.js's loopMaxIterations).
 *
 * Rules every kernel in this folder follows, because gpu.js transpiles its source text to GLSL/WGSL/wasm:
 * plain `function` declarations only (no arrows, closures, imports, `??`, `?.`), `this.constants.X` written
 * out in full (gpu.js rejects an alias like `const c = this.constants`), every loop bound a
 * constant, and integer division written `Math.floor((i + 0.5) / d)`: GPUs may divide by multiplying with
 * a reciprocal, and the half keeps an exact quotient from rounding down.
 */
export interface KernelThis<C> {
  thread: { x: number; y: number; z: number };
  constants: C;
}

/** Flat input arrays: a Float32Array on the host, or a texture / buffer that stays on the device. */
export type Values = Float32Array | number[];

export interface KernelDef<C = Record<string, number>> {
  /** The kernel body; gpu.js reads its source. */
  readonly fn: (this: KernelThis<C>, ...args: Values[]) => number;
  /** Output length for the given constants. */
  readonly outputSize: (c: C) => number;
}
