/**
 * The FaceNet Inception network shape shared by NN2 (the paper's Table 1) and OpenFace's nn4.small2:
 *   stem: conv1 7x7/2 -> maxpool 3/2 -> LRN -> conv2 1x1 -> conv3 3x3 -> LRN -> maxpool 3/2
 *   inception blocks (1x1 reductions; max or L2 pool branches)
 *   avgpool -> dense -> L2 normalize
 * A config lists the blocks, the LRN convention and the final pool; every conv is conv -> BN -> ReLU.
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { LrnOptions } from '../ops/lrn.js';
import { Module } from '../nn/module.js';
import { ConvBnAct, Linear, layerInit, type ModelInit } from '../nn/layers.js';
import { Inception, type InceptionSpec } from '../nn/inception.js';

/** Tensors recorded during a forward pass, by name (conv1_relu, lrn1, stem, inception_3a, ..., pre_norm). */
export type Taps = Map<string, Tensor>;

export interface InceptionNetConfig {
  /** Blocks by name (3a, 3b, ...), in order. */
  blocks: [string, InceptionSpec][];
  lrn: LrnOptions;
  /** Kernel of the final average pool (the last block's spatial size). */
  finalPool: number;
  embeddingDim: number;
  /** Batchnorm epsilon. */
  eps: number;
}

export class InceptionNet extends Module {
  private readonly conv1: ConvBnAct;
  private readonly conv2: ConvBnAct;
  private readonly conv3: ConvBnAct;
  private readonly blocks: [string, Inception][];
  private readonly dense: Linear;

  constructor(readonly config: InceptionNetConfig, options: ModelInit = {}) {
    super();
    const unit = { ...layerInit(options), eps: config.eps };
    this.conv1 = this.child('conv1', new ConvBnAct(3, 64, 7, { ...unit, stride: 2, padding: 3 }));
    this.conv2 = this.child('conv2', new ConvBnAct(64, 64, 1, unit));
    this.conv3 = this.child('conv3', new ConvBnAct(64, 192, 3, { ...unit, padding: 1 }));
    this.blocks = config.blocks.map(([name, spec]) => [name, this.child(`inception_${name}`, new Inception(spec, unit))]);
    const last = this.blocks[this.blocks.length - 1]![1];
    this.dense = this.child('dense', new Linear(last.outChannels, config.embeddingDim, unit));
  }

  /** x: [N, 3, H, W] -> [N, embeddingDim] unit vectors. `taps` receives the named intermediates. */
  forward(x: Tensor, taps?: Taps): Tensor {
    const tap = (name: string, t: Tensor): Tensor => (taps?.set(name, t), t);
    const lrn = (t: Tensor): Tensor => ops.lrn(t, this.config.lrn);
    const pool = (t: Tensor): Tensor => ops.maxPool2d(t, { kernel: 3, stride: 2, padding: 1 });
    let y = tap('conv1_relu', this.conv1.forward(x));
    y = tap('lrn1', lrn(pool(y)));
    y = tap('stem', pool(lrn(this.conv3.forward(this.conv2.forward(y)))));
    for (const [name, block] of this.blocks) y = tap(`inception_${name}`, block.forward(y));
    y = ops.flatten(ops.avgPool2d(y, { kernel: this.config.finalPool, stride: 1 }));
    y = tap('pre_norm', this.dense.forward(y));
    return tap('embedding', ops.l2Normalize(y));
  }
}
