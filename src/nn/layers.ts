/**
 * Layers with PyTorch parameter names: Conv2d (weight, bias), BatchNorm (weight, bias, running_mean,
 * running_var), Linear (weight [out, in], bias), PReLU (weight), and ConvBnAct, the conv -> BN -> activation
 * unit every FaceNet network is made of. Initialization: He-normal for convolutions and linear layers
 * (ReLU networks), BN gamma 1 and beta 0.
 */
import { Rng } from '../util/random.js';
import { full, randn, zeros } from '../tensor/creation.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { pair, type PaddingSpec } from '../tensor/shape.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';
import { needsGrad } from '../autograd/tape.js';

export interface LayerInit {
  dtype?: DType;
  rng: Rng;
  /** false: weights start at zero instead of being sampled (a state dict is about to replace them). */
  random?: boolean;
}

/** What a model's constructor takes to start its layers: dtype, seed, and init 'none' to skip sampling. */
export interface ModelInit { dtype?: DType; seed?: number; init?: 'random' | 'none' }

/** The LayerInit of a model built with these options. */
export function layerInit(o: ModelInit): LayerInit {
  return { dtype: o.dtype, rng: new Rng(o.seed ?? 1), random: o.init !== 'none' };
}

/** He-normal weights (or zeros when options.random is false). */
function heNormal(shape: number[], fanIn: number, options: LayerInit): Tensor {
  if (options.random === false) return zeros(shape, { dtype: options.dtype });
  return randn(shape, { dtype: options.dtype, seed: options.rng, std: Math.sqrt(2 / fanIn) });
}

/** An activation after a convolution: ReLU, PReLU with these slopes, leaky ReLU with this alpha. */
export type ConvActivation = { relu: true } | { prelu: Tensor } | { leaky: number };

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    inChannels: number, outChannels: number, kernel: number | [number, number],
    readonly options: { stride?: number | [number, number]; padding?: PaddingSpec; dilation?: number | [number, number]; groups?: number; bias?: boolean } & LayerInit,
  ) {
    super();
    const [kh, kw] = pair(kernel, 'Conv2d', 'kernel');
    const groups = options.groups ?? 1;
    const fanIn = (inChannels / groups) * kh * kw;
    this.weight = this.param('weight', heNormal([outChannels, inChannels / groups, kh, kw], fanIn, options));
    this.bias = options.bias ?? true ? this.param('bias', zeros([outChannels], { dtype: options.dtype })) : null;
  }
  forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, this.options);
  }

  /**
   * activation(conv(x) + bias): ReLU, a PReLU's slopes, or a leaky ReLU (a PReLU whose slopes all are
   * alpha: the same values). Where no gradient is asked for, one op, conv2dScaleShift with scale 1 and the
   * bias as shift: the activation is applied as the output is stored, not in a pass after (the same
   * values as the two ops). Otherwise the two ops.
   */
  forwardThen(x: Tensor, activation: ConvActivation): Tensor {
    const O = this.weight.shape[0]!, slopes = 'prelu' in activation ? activation.prelu : null;
    const alpha = 'leaky' in activation ? activation.leaky : 0;
    // float64 takes the two ops: a float32 table of slopes would round a leaky ReLU's alpha.
    if (needsGrad(x, this.weight, this.bias, slopes) || this.weight.dtype !== 'float32') {
      const y = this.forward(x);
      return 'relu' in activation ? ops.relu(y) : slopes ? ops.prelu(y, slopes) : ops.leakyRelu(y, alpha);
    }
    const shift = this.bias ? (this.bias.data as Float32Array) : new Float32Array(O);
    const act = 'relu' in activation ? true : slopes ? (slopes.data as Float32Array) : new Float32Array(O).fill(alpha);
    return ops.conv2dScaleShift(x, this.weight, new Float32Array(O).fill(1), shift, act, this.options);
  }
}

export class BatchNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(channels: number, readonly options: { eps?: number; momentum?: number; dtype?: DType } = {}) {
    super();
    const o = { dtype: options.dtype };
    this.weight = this.param('weight', full([channels], 1, o));
    this.bias = this.param('bias', zeros([channels], o));
    this.runningMean = this.buffer('running_mean', zeros([channels], o));
    this.runningVar = this.buffer('running_var', full([channels], 1, o));
  }
  get eps(): number {
    return this.options.eps ?? 1e-5;
  }
  /** options.relu: max(0, .) in the same pass; options.inputBias: the convolution's bias before it, folded in (see ops.batchNorm). */
  forward(x: Tensor, options: { relu?: boolean; inputBias?: Tensor | null } = {}): Tensor {
    return ops.batchNorm(x, {
      gamma: this.weight, beta: this.bias, runningMean: this.runningMean, runningVar: this.runningVar,
      training: this.training, momentum: this.options.momentum ?? 0.1, eps: this.eps, relu: options.relu ?? false, inputBias: options.inputBias ?? null,
    });
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, options: { bias?: boolean } & LayerInit) {
    super();
    this.weight = this.param('weight', heNormal([outFeatures, inFeatures], inFeatures, options));
    this.bias = options.bias ?? true ? this.param('bias', zeros([outFeatures], { dtype: options.dtype })) : null;
  }
  forward(x: Tensor): Tensor {
    return ops.dense(x, this.weight, this.bias);
  }
}

export class PReLU extends Module {
  readonly weight: Tensor;
  constructor(channels: number, options: { init?: number; dtype?: DType } = {}) {
    super();
    this.weight = this.param('weight', full([channels], options.init ?? 0.25, { dtype: options.dtype }));
  }
  forward(x: Tensor): Tensor {
    return ops.prelu(x, this.weight);
  }
}

export type Activation = 'relu' | 'prelu' | 'none';

/** conv -> batchnorm -> activation, with children named conv, bn (and prelu). */
export class ConvBnAct extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm;
  readonly prelu: PReLU | null;
  constructor(
    inChannels: number, outChannels: number, kernel: number | [number, number],
    readonly options: ConstructorParameters<typeof Conv2d>[3] & { eps?: number; momentum?: number; activation?: Activation },
  ) {
    super();
    this.conv = this.child('conv', new Conv2d(inChannels, outChannels, kernel, options));
    this.bn = this.child('bn', new BatchNorm(outChannels, { eps: options.eps, momentum: options.momentum, dtype: options.dtype }));
    this.prelu = options.activation === 'prelu' ? this.child('prelu', new PReLU(outChannels, { dtype: options.dtype })) : null;
  }
  forward(x: Tensor): Tensor {
    const act = this.options.activation ?? 'relu';
    if (!this.training && act !== 'prelu' && !needsGrad(x, ...this.parameters())) return this.inferenceForward(x, act === 'relu');
    // The conv's bias goes to the batchnorm (no pass to add it; with batch statistics it cancels out).
    const z = ops.conv2d(x, this.conv.weight, null, this.conv.options);
    const y = this.bn.forward(z, { relu: act === 'relu', inputBias: this.conv.bias });
    return this.prelu ? this.prelu.forward(y) : y;
  }

  /**
   * Inference without a graph: eval-mode BN and ReLU applied in one pass over the conv output,
   * y = max(0, conv(x) * s + t) with s = gamma / sqrt(var + eps), t = (bias - mean) * s + beta, computed from
   * the current parameters on every call (nothing cached, so it can never go stale). Equals the three-op
   * path up to float rounding; the goldens run through it.
   */
  private inferenceForward(x: Tensor, relu: boolean): Tensor {
    const C = this.conv.weight.shape[0]!;
    const g = this.bn.weight.data, beta = this.bn.bias.data, mean = this.bn.runningMean.data, variance = this.bn.runningVar.data;
    const b = this.conv.bias?.data;
    const scale = new Float64Array(C), shift = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      scale[c] = g[c]! / Math.sqrt(variance[c]! + this.bn.eps);
      shift[c] = ((b ? b[c]! : 0) - mean[c]!) * scale[c]! + beta[c]!;
    }
    return ops.conv2dScaleShift(x, this.conv.weight, scale, shift, relu, this.conv.options);
  }
}

/** Children run in order, named "0", "1", ... as in torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: { forward(x: Tensor): Tensor }[];
  constructor(layers: (Module & { forward(x: Tensor): Tensor })[]) {
    super();
    this.layers = layers.map((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((y, l) => l.forward(y), x);
  }
}

/** Depthwise 3x3 (any kernel) then pointwise 1x1 with bias: MobileNet's separable convolution. */
export class SeparableConv2d extends Module {
  readonly depthwise: Conv2d;
  readonly pointwise: Conv2d;
  constructor(inChannels: number, outChannels: number, kernel: number, options: { stride?: number; padding?: PaddingSpec } & LayerInit) {
    super();
    this.depthwise = this.child('depthwise', new Conv2d(inChannels, inChannels, kernel, { ...options, groups: inChannels, bias: false }));
    this.pointwise = this.child('pointwise', new Conv2d(inChannels, outChannels, 1, { dtype: options.dtype, rng: options.rng, random: options.random }));
  }
  forward(x: Tensor): Tensor {
    return this.pointwise.forward(this.depthwise.forward(x));
  }

  /** activation(forward(x)), applied by the pointwise convolution (Conv2d.forwardThen). */
  forwardThen(x: Tensor, activation: ConvActivation): Tensor {
    return this.pointwise.forwardThen(this.depthwise.forward(x), activation);
  }
}

/** Per-channel affine y = x * weight + bias (a batchnorm folded to its scale and shift). */
export class Affine extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(channels: number, options: { dtype?: DType } = {}) {
    super();
    this.weight = this.param('weight', full([channels], 1, { dtype: options.dtype }));
    this.bias = this.param('bias', zeros([channels], { dtype: options.dtype }));
  }
  /** x * weight[c] + bias[c] over channel axis 1, then ReLU when asked (one op: ops.channelAffine). */
  forward(x: Tensor, relu = false): Tensor {
    return ops.channelAffine(x, this.weight, this.bias, { relu });
  }
}
