/**
 * The MTCNN cascade (Zhang et al. 2016) as facenet-pytorch runs it:
 *   1. image pyramid (scale 12/minFaceSize, factor 0.709) -> PNet on each level -> candidate 12x12 cells
 *      above threshold[0], NMS 0.5 per level, NMS 0.7 overall, box regression, squared;
 *   2. each candidate cropped (zero padding outside the image), area-resized to 24x24 -> RNet -> score
 *      threshold[1], NMS 0.7, regression, squared;
 *   3. 48x48 crops -> ONet -> threshold[2], 5 landmarks, regression, NMS 0.7 (min mode).
 * Boxes use MTCNN's pixel-index convention (width = x2 - x1 + 1) internally.
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../autograd/memory.js';
import { alloc, Tensor } from '../tensor/tensor.js';
import type { RgbImage } from '../io/image.js';
import type { MtcnnOutput, ONet, PNet, RNet } from '../models/mtcnn.js';
import { nms, type Corners } from './boxes.js';

export interface MtcnnOptions {
  /** Smallest face side to look for, in pixels (default 20). */
  minFaceSize?: number;
  /** Score thresholds of P-, R- and O-Net (default [0.6, 0.7, 0.7]). */
  thresholds?: [number, number, number];
  /** Pyramid scale factor (default 0.709). */
  factor?: number;
}

export interface RawDetection {
  box: Corners;
  score: number;
  /** Five points: left eye, right eye, nose, left mouth corner, right mouth corner (image coordinates). */
  landmarks: [number, number][] | null;
}

/**
 * Area (box-filter) resampling of an image region into a normalized [1, 3, outH, outW] block of `out`
 * at `offset`, as PyTorch's interpolate(mode='area'). The region [x0, y0, w, h] is in pixels and may leave the
 * image: outside pixels are 0 before normalization, as MTCNN's zero padding.
 */
function areaSample(img: RgbImage, x0: number, y0: number, w: number, h: number, outW: number, outH: number, out: Float32Array, offset: number): void {
  for (let oy = 0; oy < outH; oy++) {
    const ys = Math.floor((oy * h) / outH), ye = Math.ceil(((oy + 1) * h) / outH);
    for (let ox = 0; ox < outW; ox++) {
      const xs = Math.floor((ox * w) / outW), xe = Math.ceil(((ox + 1) * w) / outW);
      const sum = [0, 0, 0];
      for (let y = ys; y < ye; y++) {
        const iy = y0 + y;
        if (iy < 0 || iy >= img.height) continue;
        for (let x = xs; x < xe; x++) {
          const ix = x0 + x;
          if (ix < 0 || ix >= img.width) continue;
          const p = (iy * img.width + ix) * 3;
          sum[0]! += img.data[p]!;
          sum[1]! += img.data[p + 1]!;
          sum[2]! += img.data[p + 2]!;
        }
      }
      const count = (ye - ys) * (xe - xs);
      for (let c = 0; c < 3; c++) out[offset + (c * outH + oy) * outW + ox] = (sum[c]! / count - 127.5) * 0.0078125;
    }
  }
}

function rerec(b: Corners): Corners {
  const w = b[2] - b[0], h = b[3] - b[1], l = Math.max(w, h);
  const x1 = b[0] + w * 0.5 - l * 0.5, y1 = b[1] + h * 0.5 - l * 0.5;
  return [x1, y1, x1 + l, y1 + l];
}

function bbreg(b: Corners, reg: readonly number[]): Corners {
  const w = b[2] - b[0] + 1, h = b[3] - b[1] + 1;
  return [b[0] + reg[0]! * w, b[1] + reg[1]! * h, b[2] + reg[2]! * w, b[3] + reg[3]! * h];
}

interface Candidate { box: Corners; score: number; reg: number[] }

export class MtcnnDetector {
  readonly minFaceSize: number;
  readonly thresholds: [number, number, number];
  readonly factor: number;

  constructor(private readonly pnet: PNet, private readonly rnet: RNet, private readonly onet: ONet, options: MtcnnOptions = {}) {
    this.minFaceSize = options.minFaceSize ?? 20;
    this.thresholds = options.thresholds ?? [0.6, 0.7, 0.7];
    this.factor = options.factor ?? 0.709;
  }

  detect(img: RgbImage): RawDetection[] {
    return noGrad(() => {
      let boxes = this.stage1(img);
      if (boxes.length > 0) boxes = this.refine(img, boxes, 24, this.rnet, this.thresholds[1]);
      return boxes.length > 0 ? this.output(img, boxes) : [];
    });
  }

  private stage1(img: RgbImage): Candidate[] {
    const { width: w, height: h } = img;
    let scale = 12 / this.minFaceSize;
    let minl = Math.min(h, w) * scale;
    const all: Candidate[] = [];
    while (minl >= 12) {
      const hs = Math.floor(h * scale + 1), ws = Math.floor(w * scale + 1);
      const input = alloc('float32', 3 * hs * ws) as Float32Array;
      areaSample(img, 0, 0, w, h, ws, hs, input, 0);
      const level = tidy(() => {
        const out = this.pnet.forward(new Tensor(input, [1, 3, hs, ws]));
        return this.cells(out, scale);
      });
      const keep = nms(level.map((c) => c.box), level.map((c) => c.score), 0.5);
      for (const i of keep) all.push(level[i]!);
      scale *= this.factor;
      minl *= this.factor;
    }
    const keep = nms(all.map((c) => c.box), all.map((c) => c.score), 0.7);
    return keep.map((i) => {
      const c = all[i]!;
      const rw = c.box[2] - c.box[0], rh = c.box[3] - c.box[1];
      const box: Corners = [c.box[0] + c.reg[0]! * rw, c.box[1] + c.reg[1]! * rh, c.box[2] + c.reg[2]! * rw, c.box[3] + c.reg[3]! * rh];
      return { box: rerec(box), score: c.score, reg: [] };
    });
  }

  /** PNet cells above threshold: each output pixel (stride 2) is a 12x12 window of the scaled image. */
  private cells(out: MtcnnOutput, scale: number): Candidate[] {
    const [, , H, W] = out.prob.shape as [number, number, number, number];
    const prob = out.prob.data, reg = out.bboxReg.data;
    const found: Candidate[] = [];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const score = prob[H * W + y * W + x]!;
        if (score < this.thresholds[0]) continue;
        const q1x = Math.floor((2 * x + 1) / scale), q1y = Math.floor((2 * y + 1) / scale);
        const q2x = Math.floor((2 * x + 12) / scale), q2y = Math.floor((2 * y + 12) / scale);
        found.push({ box: [q1x, q1y, q2x, q2y], score, reg: [0, 1, 2, 3].map((k) => reg[k * H * W + y * W + x]!) });
      }
    }
    return found;
  }

  /** Crops every box (1-based inclusive corners, as MTCNN's pad()) into a size x size batch. */
  private crops(img: RgbImage, boxes: readonly Candidate[], size: number): Tensor {
    const data = alloc('float32', boxes.length * 3 * size * size) as Float32Array;
    boxes.forEach((c, n) => {
      const x = Math.trunc(c.box[0]), y = Math.trunc(c.box[1]);
      const w = Math.trunc(c.box[2] - c.box[0] + 1), h = Math.trunc(c.box[3] - c.box[1] + 1);
      areaSample(img, x - 1, y - 1, Math.max(w, 1), Math.max(h, 1), size, size, data, n * 3 * size * size);
    });
    return new Tensor(data, [boxes.length, 3, size, size]);
  }

  private refine(img: RgbImage, boxes: Candidate[], size: number, net: RNet, threshold: number): Candidate[] {
    const passed = tidy(() => {
      const out = net.forward(this.crops(img, boxes, size));
      const kept: Candidate[] = [];
      boxes.forEach((c, n) => {
        const score = out.prob.data[n * 2 + 1]!;
        if (score > threshold) kept.push({ box: c.box, score, reg: [0, 1, 2, 3].map((k) => out.bboxReg.data[n * 4 + k]!) });
      });
      return kept;
    });
    const keep = nms(passed.map((c) => c.box), passed.map((c) => c.score), 0.7);
    return keep.map((i) => ({ box: rerec(bbreg(passed[i]!.box, passed[i]!.reg)), score: passed[i]!.score, reg: [] }));
  }

  private output(img: RgbImage, boxes: Candidate[]): RawDetection[] {
    const found = tidy(() => {
      const out = this.onet.forward(this.crops(img, boxes, 48));
      const lm = out.landmarks!.data;
      const kept: RawDetection[] = [];
      boxes.forEach((c, n) => {
        const score = out.prob.data[n * 2 + 1]!;
        if (score <= this.thresholds[2]) return;
        const w = c.box[2] - c.box[0] + 1, h = c.box[3] - c.box[1] + 1;
        const landmarks = [0, 1, 2, 3, 4].map((k): [number, number] => [w * lm[n * 10 + k]! + c.box[0] - 1, h * lm[n * 10 + 5 + k]! + c.box[1] - 1]);
        kept.push({ box: bbreg(c.box, [0, 1, 2, 3].map((k) => out.bboxReg.data[n * 4 + k]!)), score, landmarks });
      });
      return kept;
    });
    const keep = nms(found.map((d) => d.box), found.map((d) => d.score), 0.7, 'min');
    return keep.map((i) => found[i]!);
  }
}
