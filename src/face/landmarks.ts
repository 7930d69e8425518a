/**
 * 68 landmarks with face-api's landmark net: the face box is cut out (clipped to the image), padded to a
 * centered square, resized to 112x112; the net's relative (x, y) pairs map back to image coordinates.
 * Also the 5-point summary (eye centers, nose tip, mouth corners) used for MTCNN-style alignment.
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../autograd/memory.js';
import type { RgbImage } from '../io/image.js';
import { imagesToTensor, warpAffine } from '../io/transform.js';
import type { FaceLandmark68Net } from '../models/landmarks68.js';
import type { Corners } from './boxes.js';

export type Point = [number, number];

const MEAN_RGB: [number, number, number] = [122.782, 117.001, 104.298];

export function landmarks68(net: FaceLandmark68Net, img: RgbImage, box: Corners): Point[] {
  // The crop face-api uses: the box clipped to the image, then padded to a centered square.
  const x1 = Math.max(0, Math.floor(box[0])), y1 = Math.max(0, Math.floor(box[1]));
  const x2 = Math.min(img.width, Math.ceil(box[2])), y2 = Math.min(img.height, Math.ceil(box[3]));
  const w = Math.max(1, x2 - x1), h = Math.max(1, y2 - y1), side = Math.max(w, h);
  const ox = x1 - (side - w) / 2, oy = y1 - (side - h) / 2;
  const s = side / 112;
  const crop = warpAffine(clipTo(img, [x1, y1, x2, y2]), [s, 0, ox, 0, s, oy], 112, 112);
  return noGrad(() => tidy(() => {
    const out = net.forward(imagesToTensor([crop], { mean: MEAN_RGB, std: 255 })).data;
    return Array.from({ length: 68 }, (_, i): Point => [ox + out[2 * i]! * side, oy + out[2 * i + 1]! * side]);
  }));
}

/** A view of the image where everything outside `box` reads as black (so the crop's padding is black). */
function clipTo(img: RgbImage, box: Corners): RgbImage {
  const [x1, y1, x2, y2] = box;
  if (x1 <= 0 && y1 <= 0 && x2 >= img.width && y2 >= img.height) return img;
  const data = new Uint8Array(img.data.length);
  for (let y = y1; y < y2; y++) data.set(img.data.subarray((y * img.width + x1) * 3, (y * img.width + x2) * 3), (y * img.width + x1) * 3);
  return { data, width: img.width, height: img.height };
}

const mean = (pts: Point[]): Point => [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];

/** Eye centers (image left first), nose tip, mouth corners: MTCNN's five points from 68 landmarks. */
export function fivePoints(l68: Point[]): Point[] {
  return [mean(l68.slice(36, 42)), mean(l68.slice(42, 48)), l68[30]!, l68[48]!, l68[54]!];
}
