/**
 * Decoding face-api's tiny face detector (Tiny-YOLOv2): the image is padded to a square at the
 * bottom/right, resized to inputSize, and each cell (row, col) of the S x S output grid predicts, for 5
 * anchors, (tx, ty, tw, th, objectness):
 *   center = ((col, row) + sigmoid(tx, ty)) / S,  size = exp(tw, th) * anchor / S   (fractions of the square)
 * Boxes above the score threshold are kept after NMS (IoU 0.4), in image pixels.
 */
import { ArgumentError } from '../errors.js';
import { tidyAndRecycle } from '../autograd/memory.js';
import type { RgbImage } from '../io/image.js';
import { imagesToTensor, warpAffine } from '../io/transform.js';
import { TINY_FACE_ANCHORS, TINY_FACE_MEAN_RGB, type TinyFaceDetector } from '../models/tiny_face_detector.js';
import { nms, type Corners } from './boxes.js';
import type { RawDetection } from './mtcnn_detector.js';

export interface TinyDetectorOptions {
  /**
   * Sides of the square network input (multiples of 32). The detector runs at each and merges the boxes:
   * 416 finds faces down to ~1/20 of the image, 160 the close-ups (a face filling the frame) that the
   * anchors of a large input cannot cover. Default [416, 224, 160].
   */
  inputSizes?: number[];
  /**
   * Black border added on every side, as a fraction of the image's longer side (default 0.25): gives a
   * face that fills the photo some context, which this detector needs to fire on it.
   */
  contextPadding?: number;
  /** Minimum objectness (default 0.5). */
  scoreThreshold?: number;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

export class TinyDetector {
  readonly inputSizes: number[];
  readonly scoreThreshold: number;
  readonly contextPadding: number;
  constructor(private readonly net: TinyFaceDetector, options: TinyDetectorOptions = {}) {
    this.inputSizes = options.inputSizes ?? [416, 224, 160];
    this.contextPadding = options.contextPadding ?? 0.25;
    this.scoreThreshold = options.scoreThreshold ?? 0.5;
    for (const s of this.inputSizes) if (s % 32 !== 0 || s < 32) throw new ArgumentError('TinyDetector', `input sizes must be multiples of 32, got ${s}`);
  }

  detect(img: RgbImage): RawDetection[] {
    const pad = Math.round(Math.max(img.width, img.height) * this.contextPadding);
    const padded = pad > 0 ? warpAffine(img, [1, 0, -pad, 0, 1, -pad], img.width + 2 * pad, img.height + 2 * pad) : img;
    const found = this.inputSizes.flatMap((s) => this.detectAt(padded, s)).map((f) => ({
      score: f.score, box: [f.box[0] - pad, f.box[1] - pad, f.box[2] - pad, f.box[3] - pad] as Corners,
    }));
    return nms(found.map((f) => f.box), found.map((f) => f.score), 0.4).map((i) => ({ ...found[i]!, landmarks: null }));
  }

  private detectAt(img: RgbImage, S: number): { box: Corners; score: number }[] {
    const side = Math.max(img.width, img.height);
    const scale = side / S; // source pixels per network pixel
    // Pad to a square (black bottom/right) and resize in one warp.
    const input = warpAffine(img, [scale, 0, 0, 0, scale, 0], S, S);
    const found = tidyAndRecycle(() => { // boxes are plain numbers: the network's buffers are reused for the next photo
      const out = this.net.forward(imagesToTensor([input], { mean: TINY_FACE_MEAN_RGB, std: 255 }));
      const cells = out.shape[2]!;
      const d = out.data;
      const at = (anchor: number, k: number, row: number, col: number): number => d[((anchor * 5 + k) * cells + row) * cells + col]!;
      const boxes: { box: Corners; score: number }[] = [];
      for (let row = 0; row < cells; row++) {
        for (let col = 0; col < cells; col++) {
          TINY_FACE_ANCHORS.forEach(([ax, ay], a) => {
            const score = sigmoid(at(a, 4, row, col));
            if (score <= this.scoreThreshold) return;
            const cx = (col + sigmoid(at(a, 0, row, col))) / cells, cy = (row + sigmoid(at(a, 1, row, col))) / cells;
            const w = (Math.exp(at(a, 2, row, col)) * ax) / cells, h = (Math.exp(at(a, 3, row, col)) * ay) / cells;
            boxes.push({ box: [(cx - w / 2) * side, (cy - h / 2) * side, (cx + w / 2) * side, (cy + h / 2) * side], score });
          });
        }
      }
      return boxes;
    });
    return found;
  }
}
