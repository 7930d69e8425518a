/**
 * face-api.js's 68-point landmark net: 112x112 RGB (the face crop padded to a centered square),
 * (p - mean_rgb) / 255 with mean_rgb = (122.782, 117.001, 104.298) -> 136 values, (x, y) pairs in [0, 1]
 * of the padded square. Four dense blocks (each: a strided conv, then three separable convs whose
 * inputs are ReLUs of running sums), avgpool 7/2, fc 256 -> 136.
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear, SeparableConv2d, layerInit, type LayerInit, type ModelInit } from '../nn/layers.js';

class DenseBlock extends Module {
  private readonly first: Conv2d | SeparableConv2d;
  private readonly rest: SeparableConv2d[];
  constructor(inC: number, outC: number, firstIsConv: boolean, u: LayerInit) {
    super();
    this.first = this.child('conv0', firstIsConv
      ? new Conv2d(inC, outC, 3, { ...u, stride: 2, padding: 'same' })
      : new SeparableConv2d(inC, outC, 3, { ...u, stride: 2, padding: 'same' }));
    this.rest = [1, 2, 3].map((i) => this.child(`conv${i}`, new SeparableConv2d(outC, outC, 3, { ...u, padding: 'same' })));
  }
  forward(x: Tensor): Tensor {
    let sum = this.first.forwardThen(x, { relu: true });
    let input = sum; // relu(sum): the first sum is a ReLU's output already
    for (const conv of this.rest) {
      sum = ops.add(sum, conv.forward(input));
      input = ops.relu(sum);
    }
    return input;
  }
}

export class FaceLandmark68Net extends Module {
  private readonly blocks: DenseBlock[];
  private readonly fc: Linear;
  constructor(options: ModelInit = {}) {
    super();
    const u: LayerInit = layerInit(options);
    const sizes = [3, 32, 64, 128, 256];
    this.blocks = [0, 1, 2, 3].map((i) => this.child(`dense${i}`, new DenseBlock(sizes[i]!, sizes[i + 1]!, i === 0, u)));
    this.fc = this.child('fc', new Linear(256, 136, u));
  }
  /** x: [N, 3, 112, 112] -> [N, 136] relative (x, y) pairs. */
  forward(x: Tensor): Tensor {
    let y = x;
    for (const b of this.blocks) y = b.forward(y);
    return this.fc.forward(ops.flatten(ops.avgPool2d(y, { kernel: 7, stride: 2 })));
  }
}
