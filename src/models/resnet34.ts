/**
 * The dlib face recognition ResNet-34 (dlib_face_recognition_resnet_model_v1) as packaged by face-api.js:
 * 150x150 RGB, (p - mean_rgb) / 255 with mean_rgb = (122.782, 117.001, 104.298) -> 128-d descriptor,
 * compared with the Euclidean distance (0.6 threshold). The descriptor is NOT L2-normalized.
 *   conv 7x7/2 valid (+ affine + ReLU) -> maxpool 3/2 valid
 *   3 x residual(32), down(64) + 3 x residual(64), down(128) + 2 x residual(128),
 *   down(256) + 2 x residual(256), down(256) -> mean over H, W -> fc 256 -> 128 (no bias)
 * Each conv is conv (+bias) -> per-channel affine (dlib's folded batchnorm). A downsampling block's
 * shortcut is avgpool 2/2 of its input with zero channels appended; when the strided 3x3 "valid" conv
 * comes out one pixel smaller than the pooled shortcut, its output gets a zero row and column.
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { zeros } from '../tensor/creation.js';
import { Module } from '../nn/module.js';
import { needsGrad } from '../autograd/tape.js';
import { Affine, Conv2d, Linear, layerInit, type LayerInit, type ModelInit } from '../nn/layers.js';

class ConvAffine extends Module {
  readonly conv: Conv2d;
  readonly scale: Affine;
  constructor(inC: number, outC: number, k: number, readonly stride: number, u: LayerInit) {
    super();
    this.conv = this.child('conv', new Conv2d(inC, outC, k, { ...u, stride, padding: stride === 1 ? 'same' : 'valid' }));
    this.scale = this.child('scale', new Affine(outC, { dtype: u.dtype }));
  }
  forward(x: Tensor, relu: boolean): Tensor {
    if (!needsGrad(x, ...this.parameters())) return this.inferenceForward(x, relu);
    return this.scale.forward(this.conv.forward(x), relu);
  }

  /**
   * Without a graph: bias, affine and ReLU in one pass over the conv output, y = max(0, conv(x) * s + t)
   * with s = scale, t = bias * s + shift, from the current parameters on every call (nothing cached).
   * Equals the differentiable path up to float rounding (tested); the goldens run through it.
   */
  private inferenceForward(x: Tensor, relu: boolean): Tensor {
    const s = this.scale.weight.data, shift = this.scale.bias.data, bias = this.conv.bias?.data;
    const t = Float64Array.from(shift, (v, c) => (bias ? bias[c]! : 0) * s[c]! + v);
    return ops.conv2dScaleShift(x, this.conv.weight, s, t, relu, this.conv.options);
  }
}

class Residual extends Module {
  readonly conv1: ConvAffine;
  readonly conv2: ConvAffine;
  constructor(inC: number, outC: number, readonly down: boolean, u: LayerInit) {
    super();
    this.conv1 = this.child('conv1', new ConvAffine(inC, outC, 3, down ? 2 : 1, u));
    this.conv2 = this.child('conv2', new ConvAffine(outC, outC, 3, 1, u));
  }
  forward(x: Tensor): Tensor {
    let out = this.conv2.forward(this.conv1.forward(x, true), false);
    let shortcut = x;
    if (this.down) {
      shortcut = ops.avgPool2d(x, { kernel: 2, stride: 2 });
      const [N, C, H, W] = shortcut.shape as [number, number, number, number];
      const outC = out.shape[1]!;
      if (out.shape[2] !== H || out.shape[3] !== W) out = ops.pad2d(out, [0, H - out.shape[2]!, 0, W - out.shape[3]!]);
      if (outC !== C) shortcut = ops.concat([shortcut, zeros([N, outC - C, H, W], { dtype: x.dtype })], 1);
    }
    return ops.residual(shortcut, out, { relu: true });
  }
}

export class FaceRecognitionResNet34 extends Module {
  private readonly stem: ConvAffine;
  private readonly blocks: Residual[];
  private readonly fc: Linear;

  constructor(options: ModelInit = {}) {
    super();
    const u: LayerInit = layerInit(options);
    this.stem = this.child('conv32_down', new ConvAffine(3, 32, 7, 2, u));
    const plan: [string, number, number, boolean][] = [
      ['conv32_1', 32, 32, false], ['conv32_2', 32, 32, false], ['conv32_3', 32, 32, false],
      ['conv64_down', 32, 64, true], ['conv64_1', 64, 64, false], ['conv64_2', 64, 64, false], ['conv64_3', 64, 64, false],
      ['conv128_down', 64, 128, true], ['conv128_1', 128, 128, false], ['conv128_2', 128, 128, false],
      ['conv256_down', 128, 256, true], ['conv256_1', 256, 256, false], ['conv256_2', 256, 256, false],
      ['conv256_down_out', 256, 256, true],
    ];
    this.blocks = plan.map(([name, inC, outC, down]) => this.child(name, new Residual(inC, outC, down, u)));
    this.fc = this.child('fc', new Linear(256, 128, { ...u, bias: false }));
  }

  /** x: [N, 3, 150, 150] normalized RGB -> [N, 128] descriptors. */
  forward(x: Tensor): Tensor {
    let y = ops.maxPool2d(this.stem.forward(x, true), { kernel: 3, stride: 2 });
    for (const b of this.blocks) y = b.forward(y);
    return this.fc.forward(ops.flatten(ops.globalAvgPool(y)));
  }
}
