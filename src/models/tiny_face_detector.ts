/**
 * face-api.js's tiny face detector: a Tiny-YOLOv2 with depthwise-separable convolutions.
 * Input: the image padded to a square (bottom/right), resized to S x S (S a multiple of 32, e.g. 416),
 * (p - mean_rgb) / 255 with mean_rgb = (117.001, 114.697, 97.404). Output: [N, 25, S/32, S/32], for each
 * cell and each of 5 anchors (x, y, w, h, objectness) logits; decoding lives in the face pipeline.
 *   conv0 3x3 valid + leaky(0.1) -> maxpool 2/2 same -> 5 x (separable 3x3 pad 1 + leaky, maxpool)
 *   (the last pool has stride 1) -> conv8 1x1 -> 25 channels
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, SeparableConv2d, layerInit, type LayerInit, type ModelInit } from '../nn/layers.js';

export const TINY_FACE_ANCHORS: readonly [number, number][] = [
  [1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061], [4.266906, 5.178857], [9.041765, 10.66308],
];
export const TINY_FACE_MEAN_RGB: readonly [number, number, number] = [117.001, 114.697, 97.404];

export class TinyFaceDetector extends Module {
  private readonly conv0: Conv2d;
  private readonly separable: SeparableConv2d[];
  private readonly conv8: Conv2d;

  constructor(options: ModelInit = {}) {
    super();
    const u: LayerInit = layerInit(options);
    this.conv0 = this.child('conv0', new Conv2d(3, 16, 3, u));
    const sizes = [16, 32, 64, 128, 256, 512];
    this.separable = sizes.slice(1).map((out, i) => this.child(`conv${i + 1}`, new SeparableConv2d(sizes[i]!, out, 3, { ...u, padding: 1 })));
    this.conv8 = this.child('conv8', new Conv2d(512, 25, 1, u));
  }

  forward(x: Tensor): Tensor {
    let y = ops.maxPool2d(this.conv0.forwardThen(x, { leaky: 0.1 }), { kernel: 2, stride: 2, padding: 'same' });
    this.separable.forEach((conv, i) => {
      y = ops.maxPool2d(conv.forwardThen(y, { leaky: 0.1 }), { kernel: 2, stride: i === this.separable.length - 1 ? 1 : 2, padding: 'same' });
    });
    return this.conv8.forward(y);
  }
}
