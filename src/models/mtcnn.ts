/**
 * MTCNN (Zhang et al. 2016) in facenet-pytorch's layout and names, for face detection and 5 landmarks:
 *   PNet: fully convolutional 12x12 proposal net -> face probability map + box regression map;
 *   RNet: 24x24 refinement -> probability + box regression;
 *   ONet: 48x48 output net -> probability + box regression + 5 landmarks (x1..x5, y1..y5).
 * Inputs are RGB standardized as (p - 127.5) / 128, NCHW. Pools use ceil mode. Before their dense layers
 * RNet and ONet flatten in [N, W, H, C] order (the Caffe original's), hence the transposes.
 */
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear, PReLU, layerInit, type LayerInit, type ModelInit } from '../nn/layers.js';

export interface MtcnnOutput {
  /** Box regression: [N, 4, H, W] for PNet, [N, 4] for RNet/ONet. */
  bboxReg: Tensor;
  /** Softmax over (not face, face): [N, 2, H, W] for PNet, [N, 2] for RNet/ONet. */
  prob: Tensor;
  /** ONet only: [N, 10], x coordinates then y coordinates, relative to the box. */
  landmarks?: Tensor;
}

/** Registers conv/prelu/dense layers by name and runs them in a given order. */
abstract class MtcnnNet extends Module {
  protected readonly init: LayerInit;
  constructor(options: ModelInit) {
    super();
    this.init = layerInit(options);
  }
  protected conv(name: string, inC: number, outC: number, k: number): Conv2d {
    return this.child(name, new Conv2d(inC, outC, k, this.init));
  }
  protected prelu(name: string, c: number): PReLU {
    return this.child(name, new PReLU(c, { dtype: this.init.dtype }));
  }
  protected dense(name: string, inF: number, outF: number): Linear {
    return this.child(name, new Linear(inF, outF, this.init));
  }
  abstract forward(x: Tensor): MtcnnOutput;
}

const pool = (x: Tensor, k: number): Tensor => ops.maxPool2d(x, { kernel: k, stride: 2, ceilMode: true });
/** Caffe-order flatten: [N, C, H, W] -> [N, W*H*C]. */
const flattenWHC = (x: Tensor): Tensor => ops.flatten(ops.transpose(x, [0, 3, 2, 1]));

export class PNet extends MtcnnNet {
  private readonly l = {
    conv1: this.conv('conv1', 3, 10, 3), prelu1: this.prelu('prelu1', 10),
    conv2: this.conv('conv2', 10, 16, 3), prelu2: this.prelu('prelu2', 16),
    conv3: this.conv('conv3', 16, 32, 3), prelu3: this.prelu('prelu3', 32),
    conv4_1: this.conv('conv4_1', 32, 2, 1), conv4_2: this.conv('conv4_2', 32, 4, 1),
  };
  forward(x: Tensor): MtcnnOutput {
    const l = this.l;
    let y = pool(l.conv1.forwardThen(x, { prelu: l.prelu1.weight }), 2);
    y = l.conv2.forwardThen(y, { prelu: l.prelu2.weight });
    y = l.conv3.forwardThen(y, { prelu: l.prelu3.weight });
    return { prob: ops.softmax(l.conv4_1.forward(y), 1), bboxReg: l.conv4_2.forward(y) };
  }
}

export class RNet extends MtcnnNet {
  private readonly l = {
    conv1: this.conv('conv1', 3, 28, 3), prelu1: this.prelu('prelu1', 28),
    conv2: this.conv('conv2', 28, 48, 3), prelu2: this.prelu('prelu2', 48),
    conv3: this.conv('conv3', 48, 64, 2), prelu3: this.prelu('prelu3', 64),
    dense4: this.dense('dense4', 576, 128), prelu4: this.prelu('prelu4', 128),
    dense5_1: this.dense('dense5_1', 128, 2), dense5_2: this.dense('dense5_2', 128, 4),
  };
  forward(x: Tensor): MtcnnOutput {
    const l = this.l;
    let y = pool(l.conv1.forwardThen(x, { prelu: l.prelu1.weight }), 3);
    y = pool(l.conv2.forwardThen(y, { prelu: l.prelu2.weight }), 3);
    y = l.conv3.forwardThen(y, { prelu: l.prelu3.weight });
    y = l.prelu4.forward(l.dense4.forward(flattenWHC(y)));
    return { prob: ops.softmax(l.dense5_1.forward(y), 1), bboxReg: l.dense5_2.forward(y) };
  }
}

export class ONet extends MtcnnNet {
  private readonly l = {
    conv1: this.conv('conv1', 3, 32, 3), prelu1: this.prelu('prelu1', 32),
    conv2: this.conv('conv2', 32, 64, 3), prelu2: this.prelu('prelu2', 64),
    conv3: this.conv('conv3', 64, 64, 3), prelu3: this.prelu('prelu3', 64),
    conv4: this.conv('conv4', 64, 128, 2), prelu4: this.prelu('prelu4', 128),
    dense5: this.dense('dense5', 1152, 256), prelu5: this.prelu('prelu5', 256),
    dense6_1: this.dense('dense6_1', 256, 2), dense6_2: this.dense('dense6_2', 256, 4), dense6_3: this.dense('dense6_3', 256, 10),
  };
  forward(x: Tensor): MtcnnOutput {
    const l = this.l;
    let y = pool(l.conv1.forwardThen(x, { prelu: l.prelu1.weight }), 3);
    y = pool(l.conv2.forwardThen(y, { prelu: l.prelu2.weight }), 3);
    y = pool(l.conv3.forwardThen(y, { prelu: l.prelu3.weight }), 2);
    y = l.conv4.forwardThen(y, { prelu: l.prelu4.weight });
    y = l.prelu5.forward(l.dense5.forward(flattenWHC(y)));
    return { prob: ops.softmax(l.dense6_1.forward(y), 1), bboxReg: l.dense6_2.forward(y), landmarks: l.dense6_3.forward(y) };
  }
}
