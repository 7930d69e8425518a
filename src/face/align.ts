/**
 * Alignment: cuts each face out of the photo the way its embedding model was trained.
 *  - dlib-chip (dlib ResNet-34): similarity transform of the landmarks onto dlib's mean face
 *    (get_face_chip_details: points 27-54 and 60-64 of the 68, chip size 150, padding 0.25); with only 5
 *    points, the same mean face's eye centers, nose tip and mouth corners.
 *  - openface-outer-eyes-nose (nn4.small2): affine map of landmarks 36, 45, 33 (outer eye corners, nose)
 *    onto OpenFace's min-max normalized template scaled to 96x96; with 5 points, a similarity fit of the
 *    template's eye centers, nose tip and mouth corners.
 *  - box-crop (Inception-ResNet-v1, facenet-pytorch): the detection box, resized.
 *  - square-crop: the largest centered square of the box, resized.
 * Large faces are first reduced by an integer box filter so that sampling does not alias.
 * Warnings report what the caller should know: landmarks outside the image, tiny or strongly turned faces.
 */
import type { RgbImage } from '../io/image.js';
import { applyAffine, similarityTransform, warpAffine, type Affine } from '../io/transform.js';
import type { ModelSpec } from '../models/specs.js';
import type { Corners } from './boxes.js';
import type { Point } from './landmarks.js';

/** dlib's mean face shape, landmarks 17..67, in [0, 1] (dlib/image_transforms/interpolation.h). */
const DLIB_MEAN_X = [
  0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004, 0.490127, 0.490127, 0.490127,
  0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647,
  0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159,
  0.556721, 0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127, 0.42689,
];
const DLIB_MEAN_Y = [
  0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454, 0.203352, 0.307009,
  0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077,
  0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233,
  0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];
const dlibPoint = (i: number): Point => [DLIB_MEAN_X[i - 17]!, DLIB_MEAN_Y[i - 17]!];
/** The 68-point indices dlib aligns on: nose and eyes (27-47), outer and inner upper lip (48-54, 60-64). */
const DLIB_INDICES = Array.from({ length: 68 }, (_, i) => i).filter((i) => i >= 27 && !(i >= 55 && i <= 59) && !(i >= 65));

/** OpenFace's template (openface/align_dlib.py TEMPLATE) at the points used here, and its bounds. */
const OPENFACE: Record<number, Point> = {
  30: [0.51816430343, 0.553157797772], 33: [0.520712933176, 0.634268222208],
  36: [0.252418718401, 0.331052263829], 37: [0.298663015648, 0.302646354002], 38: [0.355749724218, 0.303020650651],
  39: [0.403718978315, 0.33867711083], 40: [0.352507175597, 0.349987615384], 41: [0.296791759886, 0.350478978225],
  42: [0.631326076346, 0.334136672344], 43: [0.679073381078, 0.29645404267], 44: [0.73597236153, 0.294721285802],
  45: [0.782865376271, 0.321305281656], 46: [0.740312274764, 0.341849376713], 47: [0.68499850091, 0.343734332172],
  48: [0.353167761422, 0.746189164237], 54: [0.69951672331, 0.739419187253],
};
const OPENFACE_MIN: Point = [0.0792396913815, 0.182360984545];
const OPENFACE_MAX: Point = [0.971193274221, 1.06080371126];
const openfacePoint = (i: number): Point => [
  (OPENFACE[i]![0] - OPENFACE_MIN[0]) / (OPENFACE_MAX[0] - OPENFACE_MIN[0]),
  (OPENFACE[i]![1] - OPENFACE_MIN[1]) / (OPENFACE_MAX[1] - OPENFACE_MIN[1]),
];

const meanOf = (pts: Point[]): Point => [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/** A template's 5 points (eye centers, nose tip, mouth corners) from its 68-point function. */
const fiveOf = (point: (i: number) => Point): Point[] => [meanOf(range(36, 41).map(point)), meanOf(range(42, 47).map(point)), point(30), point(48), point(54)];

export interface FaceGeometry {
  box: Corners;
  /** 5 points: eye centers (image left first), nose tip, mouth corners. */
  landmarks5: Point[] | null;
  landmarks68: Point[] | null;
}

export interface AlignedFace {
  image: RgbImage;
  /** Maps chip coordinates to image coordinates. */
  toImage: Affine;
  warnings: string[];
}

/** Exact affine map of three points onto three points. */
function affineFrom3(src: Point[], dst: Point[]): Affine {
  const [[x0, y0], [x1, y1], [x2, y2]] = src as [Point, Point, Point];
  const det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
  const solve = (v0: number, v1: number, v2: number): [number, number, number] => {
    const a = ((v1 - v0) * (y2 - y0) - (v2 - v0) * (y1 - y0)) / det;
    const b = ((x1 - x0) * (v2 - v0) - (x2 - x0) * (v1 - v0)) / det;
    return [a, b, v0 - a * x0 - b * y0];
  };
  const [a, b, c] = solve(dst[0]![0], dst[1]![0], dst[2]![0]);
  const [d, e, f] = solve(dst[0]![1], dst[1]![1], dst[2]![1]);
  return [a, b, c, d, e, f];
}

/** chip -> image transform for a face under a model's alignment. */
export function chipTransform(face: FaceGeometry, spec: ModelSpec): Affine {
  const [H, W] = spec.inputSize;
  const scaled = (pts: Point[], pad = 0): Point[] => pts.map(([x, y]) => [((x + pad) / (1 + 2 * pad)) * W, ((y + pad) / (1 + 2 * pad)) * H]);
  switch (spec.alignment) {
    case 'dlib-chip':
      if (face.landmarks68) return similarityTransform(scaled(DLIB_INDICES.map(dlibPoint), 0.25), DLIB_INDICES.map((i) => face.landmarks68![i]!));
      if (face.landmarks5) return similarityTransform(scaled(fiveOf(dlibPoint), 0.25), face.landmarks5);
      break;
    case 'openface-outer-eyes-nose':
      if (face.landmarks68) return affineFrom3(scaled([36, 45, 33].map(openfacePoint)), [36, 45, 33].map((i) => face.landmarks68![i]!));
      if (face.landmarks5) return similarityTransform(scaled(fiveOf(openfacePoint)), face.landmarks5);
      break;
    case 'square-crop': {
      const [x1, y1, x2, y2] = face.box;
      const side = Math.min(x2 - x1, y2 - y1);
      return [side / W, 0, (x1 + x2 - side) / 2, 0, side / H, (y1 + y2 - side) / 2];
    }
    case 'box-crop':
      break;
  }
  const [x1, y1, x2, y2] = face.box;
  return [(x2 - x1) / W, 0, x1, 0, (y2 - y1) / H, y1];
}

/**
 * Box-filter reduction by an integer factor (anti-aliasing before a strong downscale). Only the reduced
 * pixels in `region` (first and last column, first and last row) are computed; the others stay 0, and
 * the image keeps its full size, so a warp reads the same pixels at the same coordinates.
 */
function reduce(img: RgbImage, k: number, region: [number, number, number, number]): RgbImage {
  const W = Math.floor(img.width / k), H = Math.floor(img.height / k);
  const [x0, y0, x1, y1] = [Math.max(region[0], 0), Math.max(region[1], 0), Math.min(region[2], W - 1), Math.min(region[3], H - 1)];
  const data = new Uint8Array(W * H * 3);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) s += img.data[((y * k + dy) * img.width + x * k + dx) * 3 + c]!;
        data[(y * W + x) * 3 + c] = Math.round(s / (k * k));
      }
    }
  }
  return { data, width: W, height: H };
}

/**
 * The source pixels a W x H warp by `m` reads (warpAffine samples pixel-grid positions m(x + 0.5, y + 0.5)
 * - 0.5 and their right and lower neighbours): an affine map's extremes over the output lie at its corner
 * pixels; one pixel of margin on each side covers rounding.
 */
function warpFootprint(m: Affine, W: number, H: number): [number, number, number, number] {
  const corners = [[0.5, 0.5], [W - 0.5, 0.5], [0.5, H - 0.5], [W - 0.5, H - 0.5]].map(([x, y]) => applyAffine(m, x!, y!).map((v) => v - 0.5));
  const xs = corners.map((p) => p[0]!), ys = corners.map((p) => p[1]!);
  return [Math.floor(Math.min(...xs)) - 1, Math.floor(Math.min(...ys)) - 1, Math.floor(Math.max(...xs)) + 2, Math.floor(Math.max(...ys)) + 2];
}

export function alignFace(img: RgbImage, face: FaceGeometry, spec: ModelSpec): AlignedFace {
  const toImage = chipTransform(face, spec);
  const [H, W] = spec.inputSize;
  const scale = Math.sqrt(Math.abs(toImage[0] * toImage[4] - toImage[1] * toImage[3])); // image pixels per chip pixel
  const k = Math.floor(scale);
  let image: RgbImage;
  if (k >= 2 && img.width >= 2 * k && img.height >= 2 * k) {
    const m: Affine = [toImage[0] / k, toImage[1] / k, toImage[2] / k, toImage[3] / k, toImage[4] / k, toImage[5] / k];
    image = warpAffine(reduce(img, k, warpFootprint(m, W, H)), m, W, H); // only the face's part of the photo is reduced
  } else {
    image = warpAffine(img, toImage, W, H);
  }
  return { image, toImage, warnings: faceWarnings(img, face, toImage, spec) };
}

export function faceWarnings(img: RgbImage, face: FaceGeometry, toImage: Affine, spec: ModelSpec): string[] {
  const warnings: string[] = [];
  const pts = face.landmarks5 ?? [];
  if (pts.some(([x, y]) => x < 0 || y < 0 || x >= img.width || y >= img.height)) warnings.push('landmarks-outside-image');
  const [H, W] = spec.inputSize;
  const corners = [[0, 0], [W, 0], [0, H], [W, H]].map(([x, y]) => applyAffine(toImage, x!, y!));
  if (corners.some(([x, y]) => x < -0.25 * W * Math.abs(toImage[0]) || y < -0.25 * H * Math.abs(toImage[4]) || x > img.width * 1.25 || y > img.height * 1.25)) {
    warnings.push('crop-outside-image');
  }
  if (pts.length >= 3) {
    const [le, re, nose] = pts as [Point, Point, Point];
    const eyeDist = Math.hypot(re[0] - le[0], re[1] - le[1]);
    if (eyeDist < 12) warnings.push('small-face');
    const roll = (Math.atan2(re[1] - le[1], re[0] - le[0]) * 180) / Math.PI;
    const mid: Point = [(le[0] + re[0]) / 2, (le[1] + re[1]) / 2];
    // Nose offset from the eye midline, along the eye axis, relative to the eye distance: a yaw proxy.
    const yaw = eyeDist > 0 ? ((nose[0] - mid[0]) * (re[0] - le[0]) + (nose[1] - mid[1]) * (re[1] - le[1])) / (eyeDist * eyeDist) : 0;
    if (Math.abs(roll) > 45 || Math.abs(yaw) > 0.35) warnings.push('extreme-pose');
  } else {
    const side = Math.min(face.box[2] - face.box[0], face.box[3] - face.box[1]);
    if (side < 24) warnings.push('small-face');
  }
  return warnings;
}
