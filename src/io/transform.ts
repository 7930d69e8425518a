/**
 * Geometry on RGB images: bilinear resize, crop, and affine warp with bilinear sampling; the similarity
 * transform (rotation, uniform scale, translation) that best maps one point set onto another; and the
 * conversion of images to normalized NCHW tensors. Coordinates: pixel (col, row) has its center at
 * (col + 0.5, row + 0.5); x to the right, y down.
 */
import { alloc, Tensor } from '../tensor/tensor.js';
import { ArgumentError } from '../errors.js';
import type { RgbImage } from './image.js';

/** Bilinear sample of channel c at continuous position (x, y); outside the image reads as `fill`. */
function sample(img: RgbImage, x: number, y: number, c: number, fill: number): number {
  const fx = x - 0.5, fy = y - 0.5;
  const x0 = Math.floor(fx), y0 = Math.floor(fy);
  const ax = fx - x0, ay = fy - y0;
  const at = (xi: number, yi: number): number =>
    xi < 0 || yi < 0 || xi >= img.width || yi >= img.height ? fill : img.data[(yi * img.width + xi) * 3 + c]!;
  return (1 - ay) * ((1 - ax) * at(x0, y0) + ax * at(x0 + 1, y0)) + ay * ((1 - ax) * at(x0, y0 + 1) + ax * at(x0 + 1, y0 + 1));
}

/** Clamped-edge sampling for resizing (no dark border). */
function sampleClamped(img: RgbImage, x: number, y: number, c: number): number {
  const cx = Math.min(Math.max(x, 0.5), img.width - 0.5), cy = Math.min(Math.max(y, 0.5), img.height - 0.5);
  return sample(img, cx, cy, c, 0);
}

export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  if (!(width >= 1 && height >= 1)) throw new ArgumentError('resizeBilinear', `target size must be at least 1x1, got ${width}x${height}`);
  const data = new Uint8Array(width * height * 3);
  const sx = img.width / width, sy = img.height / height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = Math.round(sampleClamped(img, (x + 0.5) * sx, (y + 0.5) * sy, c));
    }
  }
  return { data, width, height };
}

/** 2x3 affine map [a, b, tx, c, d, ty]: (x, y) -> (a x + b y + tx, c x + d y + ty). */
export type Affine = [number, number, number, number, number, number];

export function invertAffine(m: Affine): Affine {
  const [a, b, tx, c, d, ty] = m;
  const det = a * d - b * c;
  if (Math.abs(det) < 1e-12) throw new ArgumentError('invertAffine', 'the transform is singular');
  return [d / det, -b / det, (b * ty - d * tx) / det, -c / det, a / det, (c * tx - a * ty) / det];
}

export function applyAffine(m: Affine, x: number, y: number): [number, number] {
  return [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
}

/**
 * Warps `img` into a width x height output where output point p shows source point `toSource(p)`
 * (bilinear; outside the source: black).
 */
export function warpAffine(img: RgbImage, toSource: Affine, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const [a, b, tx, c, d, ty] = toSource;
  if (a === 1 && b === 0 && c === 0 && d === 1 && Number.isInteger(tx) && Number.isInteger(ty)) return translated(img, tx, ty, data, width, height);
  if (b === 0 && c === 0) return scaled(img, a, tx, d, ty, data, width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // sample()'s arithmetic for the three channels at once, without a call or a closure per value: the
      // pipeline warps every photo at several sizes (measured: a fifth of a `facenet compare`).
      const fx = a * (x + 0.5) + b * (y + 0.5) + tx - 0.5, fy = c * (x + 0.5) + d * (y + 0.5) + ty - 0.5;
      bilinear3(img, fx, fy, data, (y * width + x) * 3);
    }
  }
  return { data, width, height };
}

/**
 * A shift by whole pixels (the detector's black border): bilinear sampling then lands on pixel centres
 * (weights 1 and 0, exactly), so each output row is a copy of a source row's overlap, black elsewhere.
 */
function translated(img: RgbImage, tx: number, ty: number, data: Uint8Array, width: number, height: number): RgbImage {
  const x0 = Math.max(0, -tx), x1 = Math.min(width, img.width - tx);
  for (let y = Math.max(0, -ty); y < Math.min(height, img.height - ty) && x1 > x0; y++) {
    const from = ((y + ty) * img.width + x0 + tx) * 3;
    data.set(img.data.subarray(from, from + (x1 - x0) * 3), (y * width + x0) * 3);
  }
  return { data, width, height };
}

/**
 * An axis-aligned warp (the detector's resizes): every output column samples the same source columns
 * with the same weight, and every row the same rows, so both are worked out once, not per pixel.
 * Same arithmetic as bilinear3, so the same values (tested): b * (y + 0.5) = 0 adds nothing to fx.
 */
function scaled(img: RgbImage, a: number, tx: number, d: number, ty: number, data: Uint8Array, width: number, height: number): RgbImage {
  const W = img.width, H = img.height, src = img.data;
  // For each output column: where its source columns x0 and x0 + 1 start (-1: outside the image), and ax.
  const left = new Int32Array(width), right = new Int32Array(width), ax = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    const fx = a * (x + 0.5) + tx - 0.5, x0 = Math.floor(fx);
    left[x] = x0 >= 0 && x0 < W ? 3 * x0 : -1;
    right[x] = x0 + 1 >= 0 && x0 + 1 < W ? 3 * (x0 + 1) : -1;
    ax[x] = fx - x0;
  }
  // Columns [inFrom, inTo) read two source columns inside the image (a run: the scale's sign is fixed).
  let inFrom = 0;
  while (inFrom < width && (left[inFrom]! < 0 || right[inFrom]! < 0)) inFrom++;
  let inTo = inFrom;
  while (inTo < width && left[inTo]! >= 0 && right[inTo]! >= 0) inTo++;
  for (let y = 0; y < height; y++) {
    const fy = d * (y + 0.5) + ty - 0.5, y0 = Math.floor(fy), ay = fy - y0;
    const top = y0 >= 0 && y0 < H ? 3 * W * y0 : -1, bottom = y0 + 1 >= 0 && y0 + 1 < H ? 3 * W * (y0 + 1) : -1;
    if (top < 0 && bottom < 0) continue; // all black
    const row = 3 * width * y;
    // A pixel with a neighbour outside the image (read as 0) goes through bilinear3, at the same fx.
    const edge = (x: number): void => bilinear3(img, a * (x + 0.5) + tx - 0.5, fy, data, row + 3 * x);
    if (top < 0 || bottom < 0) {
      for (let x = 0; x < width; x++) edge(x);
      continue;
    }
    for (let x = 0; x < inFrom; x++) edge(x);
    for (let x = inFrom; x < inTo; x++) { // the inside: no bounds to check
      const t0 = top + left[x]!, t1 = top + right[x]!, b0 = bottom + left[x]!, b1 = bottom + right[x]!, wx = ax[x]!, at = row + 3 * x;
      for (let ch = 0; ch < 3; ch++) {
        data[at + ch] = Math.round((1 - ay) * ((1 - wx) * src[t0 + ch]! + wx * src[t1 + ch]!) + ay * ((1 - wx) * src[b0 + ch]! + wx * src[b1 + ch]!));
      }
    }
    for (let x = inTo; x < width; x++) edge(x);
  }
  return { data, width, height };
}

/**
 * out[at..at+2] = the three channels of img sampled bilinearly at pixel-grid position (fx, fy) (the
 * sample position minus half a pixel), rounded; neighbours outside the image read as 0. Same values as
 * sample() (tested).
 */
function bilinear3(img: RgbImage, fx: number, fy: number, out: Uint8Array, at: number): void {
  const x0 = Math.floor(fx), y0 = Math.floor(fy), ax = fx - x0, ay = fy - y0, W = img.width, H = img.height, src = img.data;
  const left = x0 >= 0 && x0 < W, right = x0 + 1 >= 0 && x0 + 1 < W, top = y0 >= 0 && y0 < H, bottom = y0 + 1 >= 0 && y0 + 1 < H;
  const i00 = (y0 * W + x0) * 3, i01 = i00 + 3 * W;
  for (let ch = 0; ch < 3; ch++) {
    const v00 = top && left ? src[i00 + ch]! : 0, v10 = top && right ? src[i00 + 3 + ch]! : 0;
    const v01 = bottom && left ? src[i01 + ch]! : 0, v11 = bottom && right ? src[i01 + 3 + ch]! : 0;
    out[at + ch] = Math.round((1 - ay) * ((1 - ax) * v00 + ax * v10) + ay * ((1 - ax) * v01 + ax * v11));
  }
}

/**
 * Least-squares similarity transform (Umeyama 1991, no reflection) mapping points `from` onto `to`:
 * returns [a, -b, tx, b, a, ty] with s = sqrt(a² + b²) the scale and atan2(b, a) the rotation.
 */
export function similarityTransform(from: readonly [number, number][], to: readonly [number, number][]): Affine {
  if (from.length !== to.length || from.length < 2) throw new ArgumentError('similarityTransform', 'needs two equal-length lists of at least 2 points');
  const n = from.length;
  const mean = (pts: readonly [number, number][]): [number, number] => [pts.reduce((s, p) => s + p[0], 0) / n, pts.reduce((s, p) => s + p[1], 0) / n];
  const [fx, fy] = mean(from), [tx, ty] = mean(to);
  // With centered points u (from) and v (to): a = sum(u·v)/sum|u|², b = sum(u×v)/sum|u|².
  let dot = 0, cross = 0, norm = 0;
  for (let i = 0; i < n; i++) {
    const ux = from[i]![0] - fx, uy = from[i]![1] - fy, vx = to[i]![0] - tx, vy = to[i]![1] - ty;
    dot += ux * vx + uy * vy;
    cross += ux * vy - uy * vx;
    norm += ux * ux + uy * uy;
  }
  if (norm < 1e-12) throw new ArgumentError('similarityTransform', 'the source points coincide');
  const a = dot / norm, b = cross / norm;
  return [a, -b, tx - (a * fx - b * fy), b, a, ty - (b * fx + a * fy)];
}

export interface Normalization {
  /** Per-channel (R, G, B) or single mean in pixel units [0, 255]. */
  mean: number | readonly [number, number, number];
  std: number;
}

/** Stacks same-sized images into a normalized float32 NCHW tensor: (p - mean) / std. */
export function imagesToTensor(images: readonly RgbImage[], norm: Normalization): Tensor {
  const first = images[0];
  if (!first) throw new ArgumentError('imagesToTensor', 'needs at least one image');
  const { width: W, height: H } = first;
  if (images.some((im) => im.width !== W || im.height !== H)) throw new ArgumentError('imagesToTensor', 'all images must have the same size');
  const mean = typeof norm.mean === 'number' ? [norm.mean, norm.mean, norm.mean] : norm.mean;
  const out = alloc('float32', images.length * 3 * H * W);
  images.forEach((im, n) => {
    for (let c = 0; c < 3; c++) {
      const base = (n * 3 + c) * H * W;
      for (let p = 0; p < H * W; p++) out[base + p] = (im.data[p * 3 + c]! - mean[c]!) / norm.std;
    }
  });
  return new Tensor(out, [images.length, 3, H, W]);
}
