/**
 * The per-channel affine map of inference (a folded batchnorm, or a bias) and the activation after it,
 * written once and emitted wherever it runs: the affine pass over a tensor (wasm_planes.ts), a depthwise
 * convolution's output vectors (wasm_depthwise.ts) and the GEMM's output tile before it is written out
 * (wasm_gemm.ts). The same operations everywhere, so the same bits: v * scale + shift in float32 (a multiply,
 * then an add: two roundings), then ReLU or PReLU. `affineRowsInPlace` is the same map in TypeScript, for
 * the products the WebAssembly kernel does not compute.
 */
import { body, I32, repeat, V128, w, type Emit, type WasmFunction } from './wasm_writer.js';

/** What follows an affine map: nothing, ReLU, or PReLU with per-channel slopes. */
export const AFFINE_ACTIVATIONS = ['none', 'relu', 'prelu'] as const;
export type AffineActivation = (typeof AFFINE_ACTIVATIONS)[number];

/** An inference epilogue: y = activation(v * scale[c] + shift[c]), PReLU with slopes[c], per channel c. */
export interface Epilogue { scale: ArrayLike<number>; shift: ArrayLike<number>; activation: AffineActivation; slopes?: ArrayLike<number> }

/** v (on the stack) with its lanes that are not > 0 zeroed, NaN kept (as integers, x > 0 iff float > 0). */
export function relu4(e: Emit, tmp: number): void {
  e(w.tee(tmp), w.get(tmp), w.zero, w.i32x4GtS, w.get(tmp), w.get(tmp), w.f32x4Ne, w.or128, w.and128);
}

/**
 * The four values on the stack times the vector in local a plus b, then ReLU, or PReLU with the slopes in
 * local s (a lane kept where its bits, as an integer, are > 0: positive floats; NaN stays NaN either way);
 * tmp: a v128 scratch local.
 */
export function affineVector(e: Emit, activation: AffineActivation, a: number, b: number, s: number, tmp: number): void {
  e(w.get(a), w.f32x4Mul, w.get(b), w.f32x4Add);
  if (activation === 'relu') relu4(e, tmp);
  if (activation === 'prelu') e(w.tee(tmp), w.get(tmp), w.get(s), w.f32x4Mul, w.get(tmp), w.zero, w.i32x4GtS, w.bitselect);
}

/**
 * affineRows(c, ld, rows, vectors, tables, tableBytes, mode), addresses and ld in bytes: row r of the
 * `rows` rows at c (ld apart), `vectors` vectors of four floats, mapped in place by the epilogue of row r:
 * scale at tables + 4r, shift tableBytes on, slopes 2 * tableBytes on (read for every mode: they must be
 * there). mode: 1 + the activation's index in AFFINE_ACTIVATIONS.
 */
export function affineRowsFunction(): WasmFunction {
  const [C, LD, ROWS, VECTORS, TABLES, TABLE_BYTES, MODE] = [0, 1, 2, 3, 4, 5, 6];
  const [ROW, LEFT, P, T, COUNT, A, B, S, TMP] = [7, 8, 9, 10, 11, 12, 13, 14, 15];
  const { code, emit: e } = body();
  AFFINE_ACTIVATIONS.forEach((activation, i) => {
    e(w.get(MODE), w.i32(i + 1), w.eq, w.if, w.get(C), w.set(ROW), w.get(TABLES), w.set(T), w.get(ROWS), w.set(LEFT));
    repeat(e, LEFT, () => {
      e(w.get(T), w.load32Splat(0), w.set(A), w.get(T), w.get(TABLE_BYTES), w.add, w.load32Splat(0), w.set(B));
      e(w.get(T), w.get(TABLE_BYTES), w.i32(2), w.mul, w.add, w.load32Splat(0), w.set(S));
      e(w.get(ROW), w.set(P), w.get(VECTORS), w.set(COUNT));
      repeat(e, COUNT, () => {
        e(w.get(P), w.get(P), w.load(0));
        affineVector(e, activation, A, B, S, TMP);
        e(w.store(0), w.get(P), w.i32(16), w.add, w.set(P));
      });
      e(w.get(ROW), w.get(LD), w.add, w.set(ROW), w.get(T), w.i32(4), w.add, w.set(T));
    });
    e(w.end);
  });
  return { name: 'affineRows', params: new Array<number>(7).fill(I32), locals: [I32, I32, I32, I32, I32, V128, V128, V128, V128], code };
}

/**
 * The same map in TypeScript over rows [0, rows) x columns [0, cols) of c at `at` (row stride ld), row r by
 * the epilogue's values at r0 + r: each operation rounded to float32 as WebAssembly's are (a float32
 * product or sum computed in float64 and rounded once is the correctly rounded float32 result).
 */
export function affineRowsInPlace(c: { [i: number]: number }, at: number, ld: number, rows: number, cols: number, ep: Epilogue, r0 = 0): void {
  const f = Math.fround;
  for (let r = 0; r < rows; r++) {
    const s = f(ep.scale[r0 + r]!), t = f(ep.shift[r0 + r]!), slope = ep.activation === 'prelu' ? f(ep.slopes![r0 + r]!) : 0;
    for (let i = at + r * ld, end = i + cols; i < end; i++) {
      const v = f(f(c[i]! * s) + t);
      if (ep.activation === 'relu') c[i] = v > 0 || v !== v ? v : 0;
      else if (ep.activation === 'prelu') c[i] = v > 0 || v !== v ? v : f(v * slope);
      else c[i] = v;
    }
  }
}
