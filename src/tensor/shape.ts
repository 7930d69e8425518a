/**
 * Shape arithmetic in one place: sizes, strides, broadcasting and the output-size rules of
 * convolution and pooling. Tensors are contiguous, row-major (C order); images are NCHW.
 */
import { ArgumentError, ShapeError } from '../errors.js';

export type Shape = readonly number[];
/** Padding of a 2-D window op: [top, bottom, left, right]. */
export type Pad4 = [number, number, number, number];
export type Pair = [number, number];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function assertValidShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, 'non-negative integer dimensions', shape);
  }
}

/** Rank check that also gives TypeScript a fixed-length tuple to destructure. */
export function dims4(op: string, shape: Shape, what = 'input'): [number, number, number, number] {
  if (shape.length !== 4) throw new ShapeError(op, `${what} of rank 4 [N, C, H, W]`, shape);
  return [shape[0]!, shape[1]!, shape[2]!, shape[3]!];
}

export function dims2(op: string, shape: Shape, what = 'input'): [number, number] {
  if (shape.length !== 2) throw new ShapeError(op, `${what} of rank 2`, shape);
  return [shape[0]!, shape[1]!];
}

/** Normalizes an axis (negative counts from the end) and checks it. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ArgumentError(op, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/**
 * Broadcasting of binary elementwise ops. Both operands must have the SAME RANK; a dimension of
 * size 1 stretches to the other operand's size. Requiring equal rank avoids numpy's silent
 * right-alignment surprises: a per-channel bias is written [1, C, 1, 1], not [C].
 */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  if (a.length !== b.length) {
    throw new ShapeError(op, `an operand of rank ${a.length} like ${formatShape(a)} (reshape the other, e.g. [1, C, 1, 1])`, b, 'ranks must match');
  }
  return a.map((da, i) => {
    const db = b[i]!;
    if (da === db || db === 1) return da;
    if (da === 1) return db;
    throw new ShapeError(op, `a shape broadcastable with ${formatShape(a)}`, b, `dimension ${i}: ${da} vs ${db}`);
  });
}

/** For each output element, the flat index it reads in an operand of shape `from` broadcast to `to`. */
export function broadcastIndex(from: Shape, to: Shape): Int32Array {
  const n = sizeOf(to);
  const idx = new Int32Array(n);
  const fromStrides = stridesOf(from).map((s, i) => (from[i] === 1 ? 0 : s));
  const counter = new Array<number>(to.length).fill(0);
  let flat = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = flat;
    for (let d = to.length - 1; d >= 0; d--) {
      counter[d]!++;
      flat += fromStrides[d]!;
      if (counter[d]! < to[d]!) break;
      flat -= fromStrides[d]! * to[d]!;
      counter[d] = 0;
    }
  }
  return idx;
}

export function pair(v: number | readonly number[], op: string, what: string): Pair {
  if (typeof v === 'number') return [v, v];
  if (v.length !== 2) throw new ArgumentError(op, `${what} must be a number or [h, w], got [${v.join(', ')}]`);
  return [v[0]!, v[1]!];
}

/** Padding spec of window ops: a number, [padH, padW], or explicit [top, bottom, left, right]. */
export type PaddingSpec = number | readonly [number, number] | readonly [number, number, number, number] | 'valid' | 'same';

/**
 * Resolves a padding spec to [top, bottom, left, right]. 'same' follows TensorFlow: output = ceil(in / stride),
 * with the odd pixel of padding at the bottom/right.
 */
export function resolvePadding(op: string, spec: PaddingSpec, inHW: Pair, kernel: Pair, stride: Pair, dilation: Pair = [1, 1]): Pad4 {
  let pad: Pad4;
  if (spec === 'valid') pad = [0, 0, 0, 0];
  else if (spec === 'same') {
    const total = (i: 0 | 1): number => {
      const eff = (kernel[i] - 1) * dilation[i] + 1;
      const out = Math.ceil(inHW[i] / stride[i]);
      return Math.max(0, (out - 1) * stride[i] + eff - inHW[i]);
    };
    const th = total(0), tw = total(1);
    pad = [Math.floor(th / 2), th - Math.floor(th / 2), Math.floor(tw / 2), tw - Math.floor(tw / 2)];
  } else if (typeof spec === 'number') pad = [spec, spec, spec, spec];
  else if (spec.length === 2) pad = [spec[0], spec[0], spec[1], spec[1]];
  else if (spec.length === 4) pad = [spec[0], spec[1], spec[2], spec[3]];
  else throw new ArgumentError(op, `padding must be a number, [h, w], [top, bottom, left, right], 'same' or 'valid'`);
  if (pad.some((p) => !Number.isInteger(p) || p < 0)) throw new ArgumentError(op, `padding must be non-negative integers, got [${pad.join(', ')}]`);
  return pad;
}

/**
 * Output length of a sliding window: floor((in + padBefore + padAfter - effKernel) / stride) + 1, or ceil with
 * ceilMode, where (as in PyTorch) the last window must start inside the input or the leading padding.
 */
export function windowOutputSize(inSize: number, kernel: number, stride: number, padBefore: number, padAfter: number, dilation = 1, ceilMode = false): number {
  const eff = (kernel - 1) * dilation + 1;
  const span = inSize + padBefore + padAfter - eff;
  if (span < 0) return 0;
  let out = (ceilMode ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceilMode && (out - 1) * stride >= inSize + padBefore) out--;
  return out;
}

export function checkPositiveInts(op: string, what: string, values: readonly number[]): void {
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new ArgumentError(op, `${what} must be positive integers, got [${values.join(', ')}]`);
}

/** Splits a shape around one axis: element (o, a, i) lives at (o*axisLen + a)*inner + i. */
export function splitAtAxis(shape: Shape, axis: number): { outer: number; axisLen: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), axisLen: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) };
}
