/**
 * conv2d: NCHW input x [N, C, H, W], filters w [O, C/groups, KH, KW], optional bias [O] -> [N, O, OH, OW].
 * Any kernel, stride, dilation, symmetric / asymmetric / 'same' padding, and groups (depthwise when
 * groups = C). Backward: dx is the transposed convolution of dy, dw correlates dy with x, db sums dy.
 */
import { affinePlanes } from '../backends/cpu/wasm_planes.js';
import { preluForward } from '../backends/cpu/relu_mask.js';
import { prelu } from './activation.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { handOver, needsGrad, noGrad, record } from '../autograd/tape.js';
import { conv2dBackward, conv2dBackwardBias, conv2dForward, convScaleShift, type ConvGeometry } from '../backends/cpu/conv.js';
import { checkPositiveInts, dims4, pair, resolvePadding, windowOutputSize, type PaddingSpec } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { commonDType } from './util.js';
import { addMacs } from '../util/flops.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: PaddingSpec;
  dilation?: number | [number, number];
  groups?: number;
}

export function convGeometry(op: string, xShape: readonly number[], wShape: readonly number[], options: Conv2dOptions): ConvGeometry {
  const [N, C, H, W] = dims4(op, xShape, 'input');
  const [O, Cg, KH, KW] = dims4(op, wShape, 'filter [O, C/groups, KH, KW]');
  const groups = options.groups ?? 1;
  const [strideH, strideW] = pair(options.stride ?? 1, op, 'stride');
  const [dilationH, dilationW] = pair(options.dilation ?? 1, op, 'dilation');
  checkPositiveInts(op, 'stride, dilation and groups', [strideH, strideW, dilationH, dilationW, groups]);
  if (C % groups !== 0 || O % groups !== 0) throw new ArgumentError(op, `groups=${groups} must divide input channels ${C} and output channels ${O}`);
  if (Cg !== C / groups) throw new ShapeError(op, `filter [${O}, ${C / groups}, KH, KW] for ${C} input channels in ${groups} group(s)`, wShape);
  if (KH < 1 || KW < 1) throw new ShapeError(op, 'a filter with KH, KW >= 1', wShape);
  const [padTop, padBottom, padLeft, padRight] = resolvePadding(op, options.padding ?? 0, [H, W], [KH, KW], [strideH, strideW], [dilationH, dilationW]);
  const OH = windowOutputSize(H, KH, strideH, padTop, padBottom, dilationH);
  const OW = windowOutputSize(W, KW, strideW, padLeft, padRight, dilationW);
  if (OH < 1 || OW < 1) throw new ShapeError(op, `an input at least as large as the dilated kernel ${KH}x${KW} after padding`, xShape);
  return { N, C, H, W, O, KH, KW, OH, OW, groups, strideH, strideW, padTop, padLeft, dilationH, dilationW };
}

/** Multiply-adds of a convolution (counted for the benchmark's GFLOP/s). */
const convMacs = (g: ConvGeometry): number => g.N * g.O * g.OH * g.OW * (g.C / g.groups) * g.KH * g.KW;

export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  commonDType('conv2d', x, w, bias);
  const g = convGeometry('conv2d', x.shape, w.shape, options);
  if (bias && (bias.rank !== 1 || bias.size !== g.O)) throw new ShapeError('conv2d', `bias [${g.O}]`, bias.shape);
  addMacs(convMacs(g));
  const inputs = bias ? [x, w, bias] : [x, w];
  const gpu = gpuFor(x, w, bias);
  if (gpu) {
    const y = gpuOps.conv2dAffine(gpu, x, w, null, bias ? (bias.data as Float32Array) : null, false, g);
    return record(y, 'conv2d', inputs, (dy, needs) => gpuOps.conv2dBackward(gpu, dy, x, w, g, needs));
  }
  const y = new Tensor(conv2dForward(x.data, w.data, bias?.data ?? null, g), [g.N, g.O, g.OH, g.OW]);
  if (!needsGrad(x, w, bias)) return y;
  const xd = x.data, wd = w.data;
  // Its gradients are new arrays for the tape alone (sums may go into them, the filters may keep theirs),
  // or dx added onto x's gradient so far when the tape offers it.
  return record(y, 'conv2d', inputs, (dy, needs, into) => [
    ...conv2dBackward(dy, xd, wd, g, needs[0]!, needs[1]!, into?.[0]).map(handOver),
    handOver(needs[2] ? conv2dBackwardBias(dy, g) : null),
  ], { addsInto: true });
}

/** Depthwise convolution: one filter per input channel (times a channel multiplier), w [C*M, 1, KH, KW]. */
export function depthwiseConv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, options: Omit<Conv2dOptions, 'groups'> = {}): Tensor {
  const C = dims4('depthwiseConv2d', x.shape)[1];
  return conv2d(x, w, bias, { ...options, groups: C });
}

/**
 * Inference only (no gradient): act(conv(x, w) * scale[o] + shift[o]), the convolution with an eval-mode
 * batchnorm (and bias) folded into one per-channel affine map (one kernel on the GPU; on the CPU applied as
 * the output is stored: the GEMM's output blocks, a depthwise convolution's vectors; a pass after the
 * convolution for float64 and grouped ones). act: true for ReLU, per-channel slopes for PReLU
 * (v > 0 ? v : slope[o] * v, as prelu), false for none.
 */
export function conv2dScaleShift(
  x: Tensor, w: Tensor, scale: Float32Array | Float64Array, shift: Float32Array | Float64Array, act: boolean | Float32Array | Float64Array, options: Conv2dOptions = {},
): Tensor {
  commonDType('conv2dScaleShift', x, w);
  const g = convGeometry('conv2dScaleShift', x.shape, w.shape, options);
  if (scale.length !== g.O || shift.length !== g.O) throw new ShapeError('conv2dScaleShift', `scale and shift of ${g.O} values`, [scale.length, shift.length]);
  const slopes = typeof act === 'boolean' ? null : act;
  if (slopes && slopes.length !== g.O) throw new ShapeError('conv2dScaleShift', `PReLU slopes of ${g.O} values`, [slopes.length]);
  const gpu = gpuFor(x, w);
  if (gpu) {
    addMacs(convMacs(g));
    const y = gpuOps.conv2dAffine(gpu, x, w, Float32Array.from(scale), Float32Array.from(shift), act === true, g);
    if (!slopes) return y;
    const out = noGrad(() => prelu(y, new Tensor(Float32Array.from(slopes), [g.O])));
    y.dispose(); // its device buffer: only the PReLU's output is returned
    return out;
  }
  const fused = convScaleShift(x.data, w.data, g, scale, shift, act);
  if (fused) {
    addMacs(convMacs(g));
    return new Tensor(fused, [g.N, g.O, g.OH, g.OW]);
  }
  const y = noGrad(() => conv2d(x, w, null, options));
  const P = g.OH * g.OW, d = y.data;
  if (affinePlanes(d, d, g.N, g.O, P, scale, shift, act)) return y;
  for (let n = 0; n < g.N; n++) {
    for (let o = 0; o < g.O; o++) {
      const s = scale[o]!, t = shift[o]!;
      for (let k = (n * g.O + o) * P, end = k + P; k < end; k++) {
        const v = d[k]! * s + t;
        d[k] = act === true && v < 0 ? 0 : v;
      }
    }
  }
  if (slopes) preluForward(d, slopes, g.N, g.O, P, d);
  return y;
}
