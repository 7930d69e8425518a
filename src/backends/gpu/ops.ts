/**
 * The GPU implementations of the ops in src/ops, one function per kernel call pattern. Forward results
 * stay on the device (a Tensor over a DeviceData); gradients are read back to the host because the tape
 * accumulates on the host. Inputs that live on the host are uploaded by gpu.js on the call.
 * Geometry checks happen in src/ops before these run, exactly as for the CPU.
 */
import type { ConvGeometry } from '../cpu/conv.js';
import type { PoolGeometry } from '../cpu/pool.js';
import { Tensor, type DeviceData, type TypedArray } from '../../tensor/tensor.js';
import { BINARY_OPS, CHANNEL_REDUCE, UNARY_OPS } from '../../../kernels/index.js';
import type { GpuDevice, KernelArg } from './device.js';

/** A tensor as a kernel argument: its device buffer, or its host values. */
const arg = (t: Tensor): KernelArg => t.device ?? (t.data as Float32Array);
const host = (a: TypedArray): Float32Array => a as Float32Array;
const filled = (n: number, v: number): Float32Array => new Float32Array(n).fill(v);

// --- convolution -------------------------------------------------------------------------------

function convConstants(g: ConvGeometry, relu: boolean): Record<string, number> {
  return {
    N: g.N, C: g.C, H: g.H, W: g.W, O: g.O, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW,
    SH: g.strideH, SW: g.strideW, PT: g.padTop, PL: g.padLeft, DH: g.dilationH, DW: g.dilationW,
    CG: g.C / g.groups, OG: g.O / g.groups, RELU: relu ? 1 : 0,
  };
}

const isPointwise = (g: ConvGeometry): boolean =>
  g.KH === 1 && g.KW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0 && g.groups === 1 && g.OH === g.H && g.OW === g.W;

/** act(scale[o] * conv(x, w) + shift[o]): conv with bias (scale 1), or with an eval-mode BN folded in. */
export function conv2dAffine(dev: GpuDevice, x: Tensor, w: Tensor, scale: Float32Array | null, shift: Float32Array | null, relu: boolean, g: ConvGeometry): Tensor {
  const kernel = isPointwise(g) ? 'conv1x1Forward' : 'conv2dForward';
  const out = dev.run(kernel, convConstants(g, relu), [arg(x), arg(w), scale ?? filled(g.O, 1), shift ?? filled(g.O, 0)]);
  return new Tensor(out, [g.N, g.O, g.OH, g.OW]);
}

export function conv2dBackward(dev: GpuDevice, dy: TypedArray, x: Tensor, w: Tensor, g: ConvGeometry, needs: readonly boolean[]): (Float32Array | null)[] {
  const c = convConstants(g, false);
  return [
    needs[0] ? dev.runToHost('conv2dBackwardInput', c, [host(dy), arg(w)]) : null,
    needs[1] ? dev.runToHost('conv2dBackwardFilter', c, [host(dy), arg(x)]) : null,
    needs[2] ? channelSum(dev, dy, g.N, g.O, g.OH * g.OW) : null,
  ];
}

// --- pooling -----------------------------------------------------------------------------------

export const POOL_MODE = { max: 0, avg: 1, l2: 2 } as const;

function poolConstants(g: PoolGeometry, mode: number, includePad: boolean): Record<string, number> {
  return {
    N: g.N, C: g.C, H: g.H, W: g.W, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW, SH: g.strideH, SW: g.strideW,
    PT: g.padTop, PB: g.padBottom, PL: g.padLeft, PR: g.padRight, MODE: mode, INCLUDE_PAD: includePad ? 1 : 0,
  };
}

export function pool2d(dev: GpuDevice, x: Tensor, g: PoolGeometry, mode: number, includePad: boolean): Tensor {
  return new Tensor(dev.run('pool2dForward', poolConstants(g, mode, includePad), [arg(x)]), [g.N, g.C, g.OH, g.OW]);
}

export function pool2dBackward(dev: GpuDevice, dy: TypedArray, x: Tensor, y: Tensor, g: PoolGeometry, mode: number, includePad: boolean): Float32Array {
  return dev.runToHost('pool2dBackward', poolConstants(g, mode, includePad), [host(dy), arg(x), arg(y)]);
}

// --- normalization -----------------------------------------------------------------------------

const channelConstants = (N: number, C: number, P: number, relu = false, mode = 0): Record<string, number> =>
  ({ N, C, P, PB: Math.ceil(P / 32), RELU: relu ? 1 : 0, M: N * P, MODE: mode });

const unused = new Float32Array(1);

/** Per-channel sums over [N, C, P] values (read back: C numbers); see CHANNEL_REDUCE for the terms. */
function reduceChannels(dev: GpuDevice, mode: keyof typeof CHANNEL_REDUCE, N: number, C: number, P: number, a: KernelArg, b: KernelArg = unused, mean: KernelArg = unused, scale: KernelArg = unused): Float32Array {
  return dev.runToHost('channelReduce', channelConstants(N, C, P, false, CHANNEL_REDUCE[mode]), [a, b, mean, scale]);
}

/** Sums over axis 0 and the pixels of [N, C, P] values, per channel (bias gradients). */
export function channelSum(dev: GpuDevice, values: TypedArray, N: number, C: number, P: number): Float32Array {
  return reduceChannels(dev, 'sum', N, C, P, host(values));
}

/** y = act(x * scale[c] + shift[c]) over channel axis 1. */
export function channelAffine(dev: GpuDevice, x: Tensor, scale: Float32Array, shift: Float32Array, relu: boolean): Tensor {
  const N = x.shape[0]!, C = x.shape[1]!, P = x.size / (N * C);
  return new Tensor(dev.run('channelAffine', channelConstants(N, C, P, relu), [arg(x), scale, shift]), x.shape);
}

/** Per-channel mean and biased variance of x (two passes), read back for the running statistics. */
export function channelMoments(dev: GpuDevice, x: Tensor): { mean: Float32Array; variance: Float32Array } {
  const N = x.shape[0]!, C = x.shape[1]!, P = x.size / (N * C), M = N * P;
  const mean = reduceChannels(dev, 'sum', N, C, P, arg(x)).map((s) => s / M);
  const variance = reduceChannels(dev, 'squaredDeviation', N, C, P, arg(x), unused, mean).map((s) => s / M);
  return { mean, variance };
}

/** BN gradients: [dx or null, dgamma = sum(dy*xhat), dbeta = sum(dy)]; eval mode: dx = dy * gain. */
export function batchNormBackward(
  dev: GpuDevice, dy: TypedArray, x: Tensor, mean: Float32Array, invstd: Float32Array, gain: Float32Array, training: boolean, needX: boolean,
): { dx: Float32Array | null; sumDy: Float32Array; sumDyXhat: Float32Array } {
  const N = x.shape[0]!, C = x.shape[1]!, P = x.size / (N * C);
  const c = channelConstants(N, C, P);
  const sumDy = reduceChannels(dev, 'sum', N, C, P, host(dy));
  const sumDyXhat = reduceChannels(dev, 'dotCentered', N, C, P, arg(x), host(dy), mean, invstd);
  let dx: Float32Array | null = null;
  if (needX && training) dx = dev.runToHost('batchNormTrainBackward', c, [host(dy), arg(x), mean, invstd, gain, sumDy, sumDyXhat]);
  else if (needX) dx = dev.runToHost('channelAffine', c, [host(dy), gain, new Float32Array(C)]);
  return { dx, sumDy, sumDyXhat };
}

export function lrn(dev: GpuDevice, x: Tensor, r: number, k: number, scale: number, beta: number): Tensor {
  const c = { N: x.shape[0]!, C: x.shape[1]!, P: x.shape[2]! * x.shape[3]!, R: r, K: k, SCALE: scale, BETA: beta };
  return new Tensor(dev.run('lrnForward', c, [arg(x)]), x.shape);
}

export function lrnBackward(dev: GpuDevice, dy: TypedArray, x: Tensor, r: number, k: number, scale: number, beta: number): Float32Array {
  const c = { N: x.shape[0]!, C: x.shape[1]!, P: x.shape[2]! * x.shape[3]!, R: r, K: k, SCALE: scale, BETA: beta };
  return dev.runToHost('lrnBackward', c, [host(dy), arg(x)]);
}

export function l2Normalize(dev: GpuDevice, x: Tensor, axisLen: number, inner: number, eps: number): Tensor {
  return new Tensor(dev.run('l2NormalizeForward', { AXIS_LEN: axisLen, INNER: inner, EPS: eps, SIZE: x.size }, [arg(x)]), x.shape);
}

export function l2NormalizeBackward(dev: GpuDevice, dy: TypedArray, x: Tensor, axisLen: number, inner: number, eps: number): Float32Array {
  return dev.runToHost('l2NormalizeBackward', { AXIS_LEN: axisLen, INNER: inner, EPS: eps, SIZE: x.size }, [host(dy), arg(x)]);
}

// --- activations -------------------------------------------------------------------------------

export type UnaryName = keyof typeof UNARY_OPS;

export function unary(dev: GpuDevice, name: UnaryName, x: Tensor, alpha = 0): Tensor {
  return new Tensor(dev.run('unaryForward', { OP: UNARY_OPS[name], ALPHA: alpha, SIZE: x.size }, [arg(x)]), x.shape);
}

export function unaryBackward(dev: GpuDevice, name: UnaryName, dy: TypedArray, x: Tensor, y: Tensor, alpha = 0): Float32Array {
  return dev.runToHost('unaryBackward', { OP: UNARY_OPS[name], ALPHA: alpha, SIZE: x.size }, [host(dy), arg(x), arg(y)]);
}

const preluConstants = (x: Tensor): Record<string, number> => ({ N: x.shape[0]!, C: x.shape[1]!, INNER: x.size / (x.shape[0]! * x.shape[1]!) });

export function prelu(dev: GpuDevice, x: Tensor, alpha: Tensor): Tensor {
  return new Tensor(dev.run('preluForward', preluConstants(x), [arg(x), arg(alpha)]), x.shape);
}

export function preluBackward(dev: GpuDevice, dy: TypedArray, x: Tensor, alpha: Tensor, needs: readonly boolean[]): (Float32Array | null)[] {
  const c = preluConstants(x);
  return [
    needs[0] ? dev.runToHost('preluBackwardInput', c, [host(dy), arg(x), arg(alpha)]) : null,
    needs[1] ? reduceChannels(dev, 'dotNegative', c.N!, c.C!, c.INNER!, arg(x), host(dy)) : null,
  ];
}

// --- elementwise -------------------------------------------------------------------------------

export type BinaryName = keyof typeof BINARY_OPS;

/** Shapes right-aligned to rank 4 and row-major strides, 0 along dimensions of size 1 (broadcast). */
function rank4(shape: readonly number[]): { dims: number[]; strides: number[] } {
  const dims = [...Array<number>(4 - shape.length).fill(1), ...shape];
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  return { dims, strides: strides.map((s, i) => (dims[i] === 1 ? 0 : s)) };
}

function binaryConstants(name: BinaryName, a: readonly number[], b: readonly number[], out: readonly number[]): Record<string, number> {
  const A = rank4(a), B = rank4(b), D = rank4(out).dims;
  const c: Record<string, number> = { OP: BINARY_OPS[name] };
  for (let i = 0; i < 4; i++) Object.assign(c, { [`D${i}`]: D[i], [`A${i}`]: A.strides[i], [`B${i}`]: B.strides[i] });
  return c;
}

/** a op b, where b may be a plain number (sent as a one-element operand broadcast everywhere). */
export function binary(dev: GpuDevice, name: BinaryName, a: Tensor, b: Tensor | number, outShape: readonly number[]): Tensor {
  const bShape = typeof b === 'number' ? [1] : b.shape;
  const bArg = typeof b === 'number' ? new Float32Array([b]) : arg(b);
  return new Tensor(dev.run('binaryForward', binaryConstants(name, a.shape, bShape, outShape), [arg(a), bArg]), outShape);
}

export function binaryBackward(dev: GpuDevice, name: BinaryName, dy: TypedArray, a: Tensor, b: Tensor | number, outShape: readonly number[], needs: readonly boolean[]): (Float32Array | null)[] {
  const bShape = typeof b === 'number' ? [1] : b.shape;
  const bArg = typeof b === 'number' ? new Float32Array([b]) : arg(b);
  const base = binaryConstants(name, a.shape, bShape, outShape);
  const D = rank4(outShape).dims;
  const gradOf = (which: number, shape: readonly number[]): Float32Array => {
    const S = rank4(shape).dims;
    const c: Record<string, number> = { ...base, WHICH: which };
    for (let i = 0; i < 4; i++) Object.assign(c, { [`S${i}`]: S[i], [`RA${i}`]: S[i] === 1 ? D[i] : 1 });
    return dev.runToHost('binaryGrad', c, [host(dy), arg(a), bArg]);
  };
  return [needs[0] ? gradOf(0, a.shape) : null, typeof b !== 'number' && needs[1] ? gradOf(1, b.shape) : null];
}

// --- dense -------------------------------------------------------------------------------------

export interface GemmSpec { M: number; N: number; K: number; transA: boolean; transB: boolean }

function gemmCall(a: Tensor | TypedArray, b: Tensor | TypedArray, bias: Tensor | null, s: GemmSpec): [Record<string, number>, KernelArg[]] {
  const c = { M: s.M, N: s.N, K: s.K, TA: s.transA ? 1 : 0, TB: s.transB ? 1 : 0, HAS_BIAS: bias ? 1 : 0 };
  const asArg = (t: Tensor | TypedArray): KernelArg => (t instanceof Tensor ? arg(t) : host(t));
  return [c, [asArg(a), asArg(b), bias ? arg(bias) : new Float32Array(1)]];
}

/** [M, N] = op(a) · op(b) (+ bias per column), op = transpose where asked; stays on the device. */
export function gemm(dev: GpuDevice, a: Tensor, b: Tensor, bias: Tensor | null, s: GemmSpec): Tensor {
  return new Tensor(dev.run('gemm', ...gemmCall(a, b, bias, s)), [s.M, s.N]);
}

/** The same product read back to the host (gradients). */
export function gemmToHost(dev: GpuDevice, a: Tensor | TypedArray, b: Tensor | TypedArray, s: GemmSpec): Float32Array {
  return dev.runToHost('gemm', ...gemmCall(a, b, null, s));
}

// --- layout ------------------------------------------------------------------------------------

/** The rank-4 window of x at `offset` with shape `outShape` (zeros outside x): slice, pad, and their gradients. */
export function window(dev: GpuDevice, x: Tensor | TypedArray, xShape: readonly number[], outShape: readonly number[], offset: readonly number[]): ReturnType<GpuDevice['run']> {
  const X = [...Array<number>(4 - xShape.length).fill(1), ...xShape];
  const D = [...Array<number>(4 - outShape.length).fill(1), ...outShape];
  const F = [...Array<number>(4 - offset.length).fill(0), ...offset];
  const c: Record<string, number> = {};
  for (let i = 0; i < 4; i++) Object.assign(c, { [`D${i}`]: D[i], [`X${i}`]: X[i], [`F${i}`]: F[i] });
  return dev.run('window4', c, [x instanceof Tensor ? arg(x) : host(x)]);
}

export function windowToHost(dev: GpuDevice, x: TypedArray, xShape: readonly number[], outShape: readonly number[], offset: readonly number[]): Float32Array {
  return dev.toHost(window(dev, x, xShape, outShape, offset));
}

/** Joins two or more tensors along an axis by folding concat2 over them (seen as [outer, len*inner] blocks). */
export function concat(dev: GpuDevice, tensors: readonly Tensor[], outer: number, inner: number, lens: readonly number[], outShape: readonly number[]): Tensor {
  let acc: KernelArg = arg(tensors[0]!);
  let partial: DeviceData | null = null; // the previous fold's output, ours to release
  let accLen = lens[0]! * inner;
  for (let t = 1; t < tensors.length; t++) {
    const next = dev.run('concat2', { OUTER: outer, A_LEN: accLen, B_LEN: lens[t]! * inner }, [acc, arg(tensors[t]!)]);
    partial?.release();
    acc = partial = next;
    accLen += lens[t]! * inner;
  }
  return new Tensor(partial!, outShape);
}

// --- distances ---------------------------------------------------------------------------------

export function squaredDistances(dev: GpuDevice, a: Tensor, b: Tensor): Tensor {
  const c = { N: a.shape[0]!, M: b.shape[0]!, D: a.shape[1]! };
  return new Tensor(dev.run('squaredDistances', c, [arg(a), arg(b)]), [c.N, c.M]);
}

export function squaredDistancesBackward(dev: GpuDevice, dy: TypedArray, a: Tensor, b: Tensor, needs: readonly boolean[]): [Float32Array | null, Float32Array | null] {
  const c = { N: a.shape[0]!, M: b.shape[0]!, D: a.shape[1]! };
  const da = needs[0] ? dev.runToHost('squaredDistancesGradA', c, [host(dy), arg(a), arg(b)]) : null;
  const db = needs[1] ? dev.runToHost('squaredDistancesGradB', c, [host(dy), arg(a), arg(b)]) : null;
  return [da, db];
}
