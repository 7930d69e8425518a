/**
 * A small FaceNet-style Inception network for 28x28 single-channel images (the Fashion-MNIST demo),
 * built from the same blocks as nn4.small2 and NN2:
 *   conv 3x3 (16) -> maxpool 2 -> inception (1x1 | 1x1>3x3 | 1x1>5x5 | maxpool>1x1, 40 channels)
 *   -> maxpool 2 -> inception (... | L2 pool>1x1, 80) -> global average pool -> dense -> L2 normalize
 * About 0.7 MMAC per image: small enough to train for thousands of steps on two cores.
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { ConvBnAct, Linear, layerInit, type ModelInit } from '../nn/layers.js';
import { Inception } from '../nn/inception.js';

export class SmallInception extends Module {
  private readonly stem: ConvBnAct;
  private readonly a: Inception;
  private readonly b: Inception;
  private readonly dense: Linear;
  constructor(options: ModelInit & { embeddingDim?: number } = {}) {
    super();
    const u = { ...layerInit(options), eps: 1e-5 };
    this.stem = this.child('conv1', new ConvBnAct(1, 16, 3, { ...u, padding: 1 }));
    this.a = this.child('inception_a', new Inception({
      inChannels: 16, branch1x1: 8, branch3x3: { reduce: 8, out: 16 }, branch5x5: { reduce: 4, out: 8 },
      pool: { type: 'max', kernel: 3, stride: 1, padding: 1, proj: 8 },
    }, u));
    this.b = this.child('inception_b', new Inception({
      inChannels: this.a.outChannels, branch1x1: 16, branch3x3: { reduce: 16, out: 32 }, branch5x5: { reduce: 8, out: 16 },
      pool: { type: 'l2', kernel: 3, stride: 1, padding: 1, proj: 16 },
    }, u));
    this.dense = this.child('dense', new Linear(this.b.outChannels, options.embeddingDim ?? 64, u));
  }
  /** x: [N, 1, 28, 28] -> [N, embeddingDim] unit vectors. */
  forward(x: Tensor): Tensor {
    let y = ops.maxPool2d(this.stem.forward(x), { kernel: 2 });
    y = ops.maxPool2d(this.a.forward(y), { kernel: 2 });
    y = ops.flatten(ops.globalAvgPool(this.b.forward(y)));
    return ops.l2Normalize(this.dense.forward(y));
  }
}
