/**
 * ReLU and its gradient mask without data-dependent branches. The sign of an activation is a coin flip,
 * so `v > 0 ? v : 0` mispredicts about every other element: measured here, 6-7 ns per element against
 * 1.2 for the branch-free form, which made ReLU passes cost more than the convolution they follow.
 * On float32 the test is done on the bits: with q the int32 pattern of a float,
 *   (-q & ~q) >> 31  is all ones exactly when q > 0 as an integer, i.e. the float is > 0
 * (+0 is 0; -0 is INT_MIN, whose negation wraps to itself and is cleared by ~q; negative floats are negative
 * ints). ReLU keeps a NaN of either sign (x86 makes NaNs with the sign bit set); as a gradient mask's
 * reference a NaN counts as positive when its sign bit is clear. float64 arrays (gradient checks) take the
 * plain comparison. Where WebAssembly SIMD runs, wasm_planes.ts does the same passes four values at a time.
 */
import type { TypedArray } from '../../tensor/tensor.js';
import { maskPositive, preluPlanes, reluValues } from './wasm_planes.js';

const bits = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);
/** All ones when the float with int32 pattern q is > 0, else 0 (see above). */
const positive = (q: number): number => (-q & ~q) >> 31;

/** All ones when the float with int32 pattern q is a NaN (exponent all ones, mantissa not 0), else 0. */
const nan = (q: number): number => (0x7f800000 - (q & 0x7fffffff)) >> 31;

/** y = max(y, 0) in place; NaN stays NaN (a ReLU must not hide one). WebAssembly SIMD where it runs. */
export function reluInPlace(y: TypedArray): void {
  if (reluValues(y)) return;
  if (y instanceof Float32Array) {
    const q = bits(y);
    for (let i = 0; i < q.length; i++) { const v = q[i]!; q[i] = v & (positive(v) | nan(v)); }
  } else {
    for (let i = 0; i < y.length; i++) if (y[i]! <= 0) y[i] = 0;
  }
}

/** out[i] = ref[i] > 0 ? dy[i] : 0 (ReLU's gradient, with ref its input or output). out may be dy. */
export function maskByPositive(dy: TypedArray, ref: TypedArray, out: TypedArray): void {
  if (maskPositive(dy, ref, out)) return;
  if (dy instanceof Float32Array && ref instanceof Float32Array && out instanceof Float32Array) {
    const d = bits(dy), r = bits(ref), o = bits(out);
    for (let i = 0; i < o.length; i++) { const v = r[i]!; o[i] = d[i]! & positive(v); }
  } else {
    for (let i = 0; i < out.length; i++) out[i] = ref[i]! > 0 ? dy[i]! : 0;
  }
}

/**
 * PReLU, y = x for x > 0 and alpha[c] * x otherwise (so -0 gives alpha * -0, +Infinity stays, NaN stays
 * NaN), over [N, C, P] planes: WebAssembly SIMD where it runs; else branch-free on float32: alpha * x is
 * written, then x's bits are selected over it where x > 0.
 */
export function preluForward(x: TypedArray, alpha: TypedArray, N: number, C: number, P: number, y: TypedArray): void {
  if (preluPlanes(x, y, N, C, P, alpha)) return;
  if (!(x instanceof Float32Array && y instanceof Float32Array)) {
    for (let i = 0; i < x.length; i++) y[i] = x[i]! > 0 ? x[i]! : alpha[Math.floor(i / P) % C]! * x[i]!;
    return;
  }
  const q = bits(x), yq = bits(y);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const a = alpha[c]!;
      for (let i = (n * C + c) * P, end = i + P; i < end; i++) {
        const v = q[i]!, keep = positive(v);
        y[i] = a * x[i]!;
        yq[i] = (v & keep) | (yq[i]! & ~keep);
      }
    }
  }
}

/**
 * PReLU's gradients: dx = dy where x > 0, alpha * dy elsewhere; dalpha[c] = sum of min(x, 0) * dy. On
 * float32 the part of dy where x > 0 is taken on the bits, one plane at a time, into a scratch plane.
 */
export function preluBackward(dy: TypedArray, x: TypedArray, alpha: TypedArray, N: number, C: number, P: number, dx: TypedArray | null, dalpha: TypedArray | null): void {
  const floats = dy instanceof Float32Array && x instanceof Float32Array;
  const pos = floats ? new Float32Array(P) : null, posBits = pos ? bits(pos) : null;
  const dq = floats ? bits(dy as Float32Array) : null, xq = floats ? bits(x as Float32Array) : null;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const a = alpha[c]!, i0 = (n * C + c) * P;
      let da = 0;
      if (pos) { // pos = dy where x > 0, else 0; xNeg = min(x, 0) = x - max(x, 0)
        for (let k = 0; k < P; k++) { const v = xq![i0 + k]!; posBits![k] = dq![i0 + k]! & positive(v); }
        for (let k = 0; k < P; k++) {
          const g = dy[i0 + k]!, gp = pos[k]!;
          if (dx) dx[i0 + k] = gp + a * (g - gp);
          // where x > 0, gp = g and (g - gp) = 0; elsewhere x * g is min(x, 0) * g
          da += x[i0 + k]! * (g - gp);
        }
      } else {
        for (let i = i0; i < i0 + P; i++) {
          const v = x[i]!;
          if (dx) dx[i] = v > 0 ? dy[i]! : a * dy[i]!;
          if (v <= 0) da += v * dy[i]!;
        }
      }
      if (dalpha) dalpha[c]! += da;
    }
  }
}
