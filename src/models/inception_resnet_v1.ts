/**
 * Inception-ResNet-v1, the FaceNet most people use today, in facenet-pytorch's layout and names
 * (InceptionResnetV1): 160x160 RGB standardized as (p - 127.5) / 128 -> 512-d unit embedding.
 *   stem: conv 3x3/2, 3x3, 3x3, maxpool 3/2, conv 1x1, 3x3, 3x3/2                       (256x17x17)
 *   5 x Block35 (scale 0.17) -> Mixed_6a (896x8x8) -> 10 x Block17 (0.10) -> Mixed_7a (1792x3x3)
 *   -> 5 x Block8 (0.20) -> Block8 (no ReLU) -> avgpool -> dropout -> last_linear (no bias) -> last_bn -> L2
 * Residual blocks: relu(x + scale * conv1x1(concat(branches))). Every BasicConv2d is conv (no bias) ->
 * BN (eps 0.001) -> ReLU. Released checkpoints also hold `logits.*` (the training classifier), which
 * inference does not use.
 */
import { Rng } from '../util/random.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { BatchNorm, Conv2d, ConvBnAct, layerInit, Linear, Sequential, type LayerInit, type ModelInit } from '../nn/layers.js';
import type { Taps } from './inception_net.js';

type Unit = LayerInit;
type Kernel = number | [number, number];

const basic = (u: Unit, inC: number, outC: number, k: Kernel, options: { stride?: number; padding?: number | [number, number] } = {}): ConvBnAct =>
  new ConvBnAct(inC, outC, k, { ...u, bias: false, eps: 1e-3, stride: options.stride ?? 1, padding: options.padding ?? 0 });

/** Residual block: branches -> concat -> 1x1 conv (with bias) -> x + scale * that -> ReLU (optional). */
abstract class ResidualBlock extends Module {
  protected abstract readonly branches: { forward(x: Tensor): Tensor }[];
  protected abstract readonly conv2d: Conv2d;
  constructor(readonly scale: number, readonly relu = true) {
    super();
  }
  forward(x: Tensor): Tensor {
    const mixed = this.conv2d.forward(ops.concat(this.branches.map((b) => b.forward(x)), 1));
    return ops.residual(x, mixed, { scale: this.scale, relu: this.relu });
  }
}

class Block35 extends ResidualBlock {
  protected readonly branches;
  protected readonly conv2d;
  constructor(u: Unit, scale: number) {
    super(scale);
    this.branches = [
      this.child('branch0', basic(u, 256, 32, 1)),
      this.child('branch1', new Sequential([basic(u, 256, 32, 1), basic(u, 32, 32, 3, { padding: 1 })])),
      this.child('branch2', new Sequential([basic(u, 256, 32, 1), basic(u, 32, 32, 3, { padding: 1 }), basic(u, 32, 32, 3, { padding: 1 })])),
    ];
    this.conv2d = this.child('conv2d', new Conv2d(96, 256, 1, u));
  }
}

class Block17 extends ResidualBlock {
  protected readonly branches;
  protected readonly conv2d;
  constructor(u: Unit, scale: number) {
    super(scale);
    this.branches = [
      this.child('branch0', basic(u, 896, 128, 1)),
      this.child('branch1', new Sequential([basic(u, 896, 128, 1), basic(u, 128, 128, [1, 7], { padding: [0, 3] }), basic(u, 128, 128, [7, 1], { padding: [3, 0] })])),
    ];
    this.conv2d = this.child('conv2d', new Conv2d(256, 896, 1, u));
  }
}

class Block8 extends ResidualBlock {
  protected readonly branches;
  protected readonly conv2d;
  constructor(u: Unit, scale: number, relu = true) {
    super(scale, relu);
    this.branches = [
      this.child('branch0', basic(u, 1792, 192, 1)),
      this.child('branch1', new Sequential([basic(u, 1792, 192, 1), basic(u, 192, 192, [1, 3], { padding: [0, 1] }), basic(u, 192, 192, [3, 1], { padding: [1, 0] })])),
    ];
    this.conv2d = this.child('conv2d', new Conv2d(384, 1792, 1, u));
  }
}

/** Reduction block: strided branches and a max pool, concatenated. */
class Mixed extends Module {
  private readonly branches: { forward(x: Tensor): Tensor }[];
  constructor(branches: Record<string, Module & { forward(x: Tensor): Tensor }>) {
    super();
    this.branches = Object.entries(branches).map(([name, b]) => this.child(name, b));
  }
  forward(x: Tensor): Tensor {
    return ops.concat([...this.branches.map((b) => b.forward(x)), ops.maxPool2d(x, { kernel: 3, stride: 2 })], 1);
  }
}

export interface IrV1Options extends ModelInit {
  /** Dropout before last_linear in training mode (facenet-pytorch: 0.6). */
  dropout?: number;
}

export class InceptionResnetV1 extends Module {
  private readonly stem: [string, ConvBnAct][];
  private readonly repeat1: Sequential;
  private readonly mixed6a: Mixed;
  private readonly repeat2: Sequential;
  private readonly mixed7a: Mixed;
  private readonly repeat3: Sequential;
  private readonly block8: Block8;
  private readonly lastLinear: Linear;
  private readonly lastBn: BatchNorm;
  private readonly dropoutRng: Rng;

  constructor(readonly options: IrV1Options = {}) {
    super();
    const u: Unit = layerInit(options);
    const stem: [string, ConvBnAct][] = [
      ['conv2d_1a', basic(u, 3, 32, 3, { stride: 2 })],
      ['conv2d_2a', basic(u, 32, 32, 3)],
      ['conv2d_2b', basic(u, 32, 64, 3, { padding: 1 })],
      ['conv2d_3b', basic(u, 64, 80, 1)],
      ['conv2d_4a', basic(u, 80, 192, 3)],
      ['conv2d_4b', basic(u, 192, 256, 3, { stride: 2 })],
    ];
    this.stem = stem.map(([name, m]) => [name, this.child(name, m)]);
    this.repeat1 = this.child('repeat_1', new Sequential(Array.from({ length: 5 }, () => new Block35(u, 0.17))));
    this.mixed6a = this.child('mixed_6a', new Mixed({
      branch0: basic(u, 256, 384, 3, { stride: 2 }),
      branch1: new Sequential([basic(u, 256, 192, 1), basic(u, 192, 192, 3, { padding: 1 }), basic(u, 192, 256, 3, { stride: 2 })]),
    }));
    this.repeat2 = this.child('repeat_2', new Sequential(Array.from({ length: 10 }, () => new Block17(u, 0.1))));
    this.mixed7a = this.child('mixed_7a', new Mixed({
      branch0: new Sequential([basic(u, 896, 256, 1), basic(u, 256, 384, 3, { stride: 2 })]),
      branch1: new Sequential([basic(u, 896, 256, 1), basic(u, 256, 256, 3, { stride: 2 })]),
      branch2: new Sequential([basic(u, 896, 256, 1), basic(u, 256, 256, 3, { padding: 1 }), basic(u, 256, 256, 3, { stride: 2 })]),
    }));
    this.repeat3 = this.child('repeat_3', new Sequential(Array.from({ length: 5 }, () => new Block8(u, 0.2))));
    this.block8 = this.child('block8', new Block8(u, 1, false));
    this.lastLinear = this.child('last_linear', new Linear(1792, 512, { ...u, bias: false }));
    this.lastBn = this.child('last_bn', new BatchNorm(512, { eps: 1e-3, dtype: options.dtype }));
    this.dropoutRng = new Rng((options.seed ?? 1) + 1);
  }

  /** x: [N, 3, 160, 160] standardized RGB -> [N, 512] unit vectors. */
  forward(x: Tensor, taps?: Taps): Tensor {
    const tap = (name: string, t: Tensor): Tensor => (taps?.set(name, t), t);
    let y = x;
    for (const [name, m] of this.stem) {
      y = m.forward(y);
      if (name === 'conv2d_2b') y = ops.maxPool2d(y, { kernel: 3, stride: 2 });
    }
    tap('stem', y);
    y = tap('repeat_1', this.repeat1.forward(y));
    y = this.mixed6a.forward(y);
    y = tap('repeat_2', this.repeat2.forward(y));
    y = this.mixed7a.forward(y);
    y = tap('block8', this.block8.forward(this.repeat3.forward(y)));
    y = ops.flatten(ops.globalAvgPool(y));
    if (this.training && (this.options.dropout ?? 0) > 0) y = ops.dropout(y, this.options.dropout!, this.dropoutRng);
    y = tap('pre_norm', this.lastBn.forward(this.lastLinear.forward(y)));
    return tap('embedding', ops.l2Normalize(y));
  }
}
