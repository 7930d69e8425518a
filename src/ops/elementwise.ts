/**
 * Elementwise arithmetic. Binary ops take two tensors of the same rank (a size-1 dimension broadcasts,
 * e.g. a per-channel [1, C, 1, 1] against [N, C, H, W]) or a tensor and a plain number. The gradient of a
 * broadcast operand is summed over the dimensions it was stretched along.
 * Unary math (neg, exp, log, sqrt, square, abs) sits here too: each is f and f' side by side.
 */
import { record } from '../autograd/tape.js';
import { broadcastIndex, broadcastShapes, shapesEqual, sizeOf } from '../tensor/shape.js';
import { alloc, allocUnfilled, Tensor, type DType, type TypedArray } from '../tensor/tensor.js';
import { commonDType } from './util.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';
import { absValues, affinePlanes, affineValues, batchNormSums, binaryValues, shiftedSums } from '../backends/cpu/wasm_planes.js';

interface BinaryRule {
  f: (a: number, b: number) => number;
  /** d(out)/da and d(out)/db at (a, b). */
  da: (a: number, b: number) => number;
  db: (a: number, b: number) => number;
}

const RULES = {
  add: { f: (a, b) => a + b, da: () => 1, db: () => 1 },
  sub: { f: (a, b) => a - b, da: () => 1, db: () => -1 },
  mul: { f: (a, b) => a * b, da: (_a, b) => b, db: (a) => a },
  div: { f: (a, b) => a / b, da: (_a, b) => 1 / b, db: (a, b) => -a / (b * b) },
  maximum: { f: (a, b) => (a >= b ? a : b), da: (a, b) => (a >= b ? 1 : 0), db: (a, b) => (a >= b ? 0 : 1) },
  minimum: { f: (a, b) => (a <= b ? a : b), da: (a, b) => (a <= b ? 1 : 0), db: (a, b) => (a <= b ? 0 : 1) },
} satisfies Record<string, BinaryRule>;

function binary(name: keyof typeof RULES, a: Tensor, b: Tensor | number): Tensor {
  const rule: BinaryRule = RULES[name];
  const viaGpu = binaryOnGpu(name, a, b);
  if (viaGpu) return viaGpu;
  if (typeof b === 'number') return binaryScalar(name, rule, a, b);
  const dtype = commonDType(name, a, b);
  const shape = broadcastShapes(name, a.shape, b.shape);
  const n = sizeOf(shape);
  const ad = a.data, bd = b.data;
  const same = shapesEqual(a.shape, b.shape);
  // Index maps of the broadcast operands: built only where a loop needs them (never for the fast paths
  // of inference; they cost more than the arithmetic), and at most once.
  let maps: [Int32Array, Int32Array] | null = null;
  const indexMaps = (): [Int32Array | null, Int32Array | null] =>
    (same ? [null, null] : (maps ??= [broadcastIndex(a.shape, shape), broadcastIndex(b.shape, shape)]));
  const y = allocUnfilled(dtype, n); // every value written, on every path below
  const simple = name === 'add' || name === 'mul' || name === 'sub';
  const perChannel = !same && simple && perChannelOperand(a.shape, b.shape);
  if (same && simple) sameShapeLoop(name, ad, bd, y);
  else if (perChannel) channelLoop(name as 'add' | 'mul' | 'sub', ad, bd, y, a.shape);
  else {
    const [ai, bi] = indexMaps();
    for (let k = 0; k < n; k++) y[k] = rule.f(ad[ai ? ai[k]! : k]!, bd[bi ? bi[k]! : k]!);
  }
  return record(new Tensor(y, shape), name, [a, b], (dy, needs) => {
    if (same && name === 'add') return [needs[0] ? dy : null, needs[1] ? dy : null];
    if (perChannel) return channelLoopBackward(name as 'add' | 'mul' | 'sub', dtype, dy, ad, bd, a.shape, needs);
    const [ai, bi] = indexMaps();
    const ga = needs[0] ? alloc(dtype, a.size) : null;
    const gb = needs[1] ? alloc(dtype, b.size) : null;
    for (let k = 0; k < n; k++) {
      const ia = ai ? ai[k]! : k, ib = bi ? bi[k]! : k;
      const va = ad[ia]!, vb = bd[ib]!;
      if (ga) ga[ia]! += dy[k]! * rule.da(va, vb);
      if (gb) gb[ib]! += dy[k]! * rule.db(va, vb);
    }
    return [ga, gb];
  });
}

/** y = a op b for same-shape operands (residual adds, TF graphs' PReLU): WebAssembly SIMD where it runs. */
function sameShapeLoop(name: 'add' | 'mul' | 'sub', a: TypedArray, b: TypedArray, y: TypedArray): void {
  if (binaryValues(name, a, b, y)) return;
  const n = y.length;
  if (name === 'add') for (let k = 0; k < n; k++) y[k] = a[k]! + b[k]!;
  else if (name === 'mul') for (let k = 0; k < n; k++) y[k] = a[k]! * b[k]!;
  else for (let k = 0; k < n; k++) y[k] = a[k]! - b[k]!;
}

/** The op as one kernel when the GPU backend is active (a number b is a broadcast operand); null otherwise. */
function binaryOnGpu(name: keyof typeof RULES, a: Tensor, b: Tensor | number): Tensor | null {
  const scalar = typeof b === 'number';
  const gpu = gpuFor(a, scalar ? null : b);
  if (!gpu) return null;
  if (!scalar) commonDType(name, a, b);
  const shape = scalar ? a.shape : broadcastShapes(name, a.shape, b.shape);
  if (shape.length > 4) return null; // the kernel indexes rank <= 4
  const y = gpuOps.binary(gpu, name, a, b, shape);
  return record(y, scalar ? `${name}Scalar` : name, scalar ? [a] : [a, b], (dy, needs) => gpuOps.binaryBackward(gpu, name, dy, a, b, shape, needs));
}

/** b is [1, C, 1, ...] against a = [N, C, ...]: a per-channel constant (biases, BN, PReLU in TF graphs). */
function perChannelOperand(a: readonly number[], b: readonly number[]): boolean {
  return a.length >= 2 && b.length === a.length && b[1] === a[1] && b.every((d, i) => i === 1 || d === 1);
}

function channelLoop(name: 'add' | 'mul' | 'sub', a: TypedArray, c: TypedArray, y: TypedArray, shape: readonly number[]): void {
  const C = shape[1]!, inner = sizeOf(shape.slice(2)), planes = sizeOf(shape) / inner;
  // y = a * scale[c] + shift[c], in WebAssembly where it runs
  const ones = new Float32Array(C).fill(1), zeros = new Float32Array(C);
  const [scale, shift] = name === 'add' ? [ones, c] : name === 'sub' ? [ones, c.map((v) => -v)] : [c, zeros];
  if (affinePlanes(a, y, planes / C, C, inner, scale, shift, false)) return;
  for (let p = 0; p < planes; p++) {
    const v = c[p % C]!, base = p * inner;
    if (name === 'add') for (let i = base; i < base + inner; i++) y[i] = a[i]! + v;
    else if (name === 'mul') for (let i = base; i < base + inner; i++) y[i] = a[i]! * v;
    else for (let i = base; i < base + inner; i++) y[i] = a[i]! - v;
  }
}

/** Gradients of channelLoop: da is dy (times c for mul); dc sums dy (times a for mul; negated for sub) per channel. */
function channelLoopBackward(name: 'add' | 'mul' | 'sub', dtype: DType, dy: TypedArray, a: TypedArray, c: TypedArray, shape: readonly number[], needs: readonly boolean[]): [TypedArray | null, TypedArray | null] {
  const C = shape[1]!, inner = sizeOf(shape.slice(2)), planes = sizeOf(shape) / inner;
  const da = needs[0] ? (name === 'mul' ? alloc(dtype, dy.length) : dy) : null;
  const dc = needs[1] ? alloc(dtype, C) : null;
  const zeros = new Float32Array(C), N = planes / C;
  const viaWasm = (!da || da === dy || affinePlanes(dy, da, N, C, inner, c, zeros, false)) &&
    (!dc || wasmChannelSums(name, dy, a, N, C, inner, dc));
  if (viaWasm) return [da, dc];
  for (let p = 0; p < planes; p++) {
    const v = c[p % C]!, base = p * inner;
    let s = 0;
    if (name === 'mul') {
      for (let i = base; i < base + inner; i++) {
        if (da) da[i] = dy[i]! * v;
        s += dy[i]! * a[i]!;
      }
    } else if (dc) for (let i = base; i < base + inner; i++) s += dy[i]!;
    if (dc) dc[p % C]! += name === 'sub' ? -s : s;
  }
  return [da, dc];
}

/** dc of channelLoopBackward: per channel, sum(dy * a) (mul), sum(dy) (add), -sum(dy) (sub); false where WebAssembly does not run. */
function wasmChannelSums(name: 'add' | 'mul' | 'sub', dy: TypedArray, a: TypedArray, N: number, C: number, inner: number, dc: TypedArray): boolean {
  const zeros = new Float32Array(C);
  const sums = name === 'mul' ? batchNormSums(dy, a, N, C, inner, zeros, null, null)?.sumDyXc : shiftedSums(dy, N, C, inner, zeros)?.s1;
  if (!sums) return false;
  for (let i = 0; i < C; i++) dc[i] = name === 'sub' ? -sums[i]! : sums[i]!;
  return true;
}

function binaryScalar(name: string, rule: BinaryRule, a: Tensor, b: number): Tensor {
  const ad = a.data;
  const y = allocUnfilled(a.dtype, a.size); // every value written (so is ga)
  // x + b, x - b and x * b as one affine map over the values (WebAssembly where it runs, on every thread)
  const affine = name === 'add' ? [1, b] : name === 'sub' ? [1, -b] : name === 'mul' ? [b, 0] : null;
  if (!affine || !affineValues(ad, y, affine[0]!, affine[1]!)) for (let k = 0; k < y.length; k++) y[k] = rule.f(ad[k]!, b);
  return record(new Tensor(y, a.shape), `${name}Scalar`, [a], (dy) => {
    const ga = allocUnfilled(a.dtype, a.size);
    if (!affine || !affineValues(dy, ga, affine[0]!, 0)) for (let k = 0; k < ga.length; k++) ga[k] = dy[k]! * rule.da(ad[k]!, b);
    return [ga];
  });
}

export const add = (a: Tensor, b: Tensor | number): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor | number): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor | number): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor | number): Tensor => binary('div', a, b);
/** Elementwise max; at ties the gradient goes to the first operand. */
export const maximum = (a: Tensor, b: Tensor | number): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor | number): Tensor => binary('minimum', a, b);

/**
 * A unary op from f and its derivative f'(x, y) (given the input x and the output y, whichever is cheaper).
 * Shared by the math functions below and by the activations.
 */
export function unary(name: string, x: Tensor, f: (x: number) => number, df: (x: number, y: number) => number): Tensor {
  const xd = x.data;
  const y = alloc(x.dtype, x.size);
  for (let k = 0; k < y.length; k++) y[k] = f(xd[k]!);
  return record(new Tensor(y, x.shape), name, [x], (dy) => {
    const dx: TypedArray = alloc(x.dtype, x.size);
    for (let k = 0; k < dx.length; k++) dx[k] = dy[k]! * df(xd[k]!, y[k]!);
    return [dx];
  });
}

export const neg = (x: Tensor): Tensor => unary('neg', x, (v) => -v, () => -1);
export const exp = (x: Tensor): Tensor => unary('exp', x, Math.exp, (_v, y) => y);
export const log = (x: Tensor): Tensor => unary('log', x, Math.log, (v) => 1 / v);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, Math.sqrt, (_v, y) => 0.5 / y);
export const square = (x: Tensor): Tensor => unary('square', x, (v) => v * v, (v) => 2 * v);
/** |x|, with gradient sign(x) (0 at 0). TF graphs' PReLU runs it on every activation. */
export function abs(x: Tensor): Tensor {
  const xd = x.data;
  const y = alloc(x.dtype, x.size);
  if (!absValues(xd, y)) for (let k = 0; k < y.length; k++) y[k] = Math.abs(xd[k]!);
  return record(new Tensor(y, x.shape), 'abs', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let k = 0; k < dx.length; k++) dx[k] = xd[k]! > 0 ? dy[k]! : xd[k]! < 0 ? -dy[k]! : 0;
    return [dx];
  });
}
/** x^p for a constant exponent p. */
export const pow = (x: Tensor, p: number): Tensor => unary('pow', x, (v) => v ** p, (v) => p * v ** (p - 1));
/** Casts to another dtype; the gradient is cast back. */
export function cast(x: Tensor, dtype: 'float32' | 'float64'): Tensor {
  if (x.dtype === dtype) return x;
  const y = alloc(dtype, x.size);
  y.set(x.data);
  return record(new Tensor(y, x.shape), 'cast', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    dx.set(dy);
    return [dx];
  });
}
