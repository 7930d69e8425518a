/**
 * Image decoding: PNG (pngjs: 1-16 bit, palette, gray, alpha) and JPEG (jpeg-js: baseline and progressive),
 * into 8-bit RGB, HWC, row-major. Gray is expanded to RGB, alpha is dropped, the EXIF orientation of a
 * JPEG is applied. Before decoding, the header's dimensions are checked against pixel limits, so a
 * decompression bomb (a tiny file declaring 60000x60000) is refused without allocating anything.
 */
import { readFileSync, statSync } from 'node:fs';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { FacenetError } from '../errors.js';
import { jpegOrientation } from './exif.js';

export interface RgbImage {
  /** RGB bytes, row-major, 3 per pixel. */
  data: Uint8Array;
  width: number;
  height: number;
}

/** An image that cannot be read; `file` names it (or "<buffer>"). */
export class ImageError extends FacenetError {
  readonly file: string;
  constructor(code: string, file: string, message: string) {
    super(code, `${file}: ${message}`);
    this.file = file;
  }
}

export interface ImageLimits {
  /** Largest width x height accepted (default 50 megapixels). */
  maxPixels?: number;
  /** Largest file accepted, in bytes (default 100 MB). */
  maxFileBytes?: number;
}

const DEFAULT_MAX_PIXELS = 50_000_000;
const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;

type Format = 'png' | 'jpeg';

function sniff(buf: Uint8Array, file: string): Format {
  if (buf.length >= 8 && buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47) return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  const known: [number[], string][] = [[[0x47, 0x49, 0x46], 'GIF'], [[0x42, 0x4d], 'BMP'], [[0x52, 0x49, 0x46, 0x46], 'RIFF/WebP'], [[0x49, 0x49, 0x2a], 'TIFF'], [[0x4d, 0x4d, 0x00, 0x2a], 'TIFF']];
  const hit = known.find(([magic]) => magic.every((b, i) => buf[i] === b));
  if (buf.length === 0) throw new ImageError('EMPTY_FILE', file, 'the file is empty');
  throw new ImageError('UNSUPPORTED_FORMAT', file, `${hit ? `${hit[1]} images are` : 'this file is'} not supported; convert it to PNG or JPEG`);
}

/** Width and height from the header, without decoding. */
function headerSize(buf: Uint8Array, format: Format, file: string): { width: number; height: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (format === 'png') {
    if (buf.length < 24) throw new ImageError('CORRUPT_IMAGE', file, 'truncated PNG header');
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  let p = 2;
  while (p + 4 <= buf.length) {
    if (buf[p] !== 0xff) throw new ImageError('CORRUPT_IMAGE', file, `bad JPEG marker at byte ${p}`);
    const marker = buf[p + 1]!;
    if (marker === 0xff) { p++; continue; }
    const len = view.getUint16(p + 2);
    // SOF0..SOF15 except DHT (c4), JPG (c8), DAC (cc) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (p + 9 > buf.length) break;
      return { height: view.getUint16(p + 5), width: view.getUint16(p + 7) };
    }
    if (marker === 0xda || len < 2) break;
    p += 2 + len;
  }
  throw new ImageError('CORRUPT_IMAGE', file, 'no JPEG frame header (truncated or corrupt file)');
}

export function decodeImage(buf: Uint8Array, file = '<buffer>', limits: ImageLimits = {}): RgbImage {
  const maxBytes = limits.maxFileBytes ?? DEFAULT_MAX_BYTES;
  if (buf.length > maxBytes) throw new ImageError('FILE_TOO_LARGE', file, `${buf.length} bytes exceeds the ${maxBytes}-byte limit (maxFileBytes)`);
  const format = sniff(buf, file);
  const { width, height } = headerSize(buf, format, file);
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (width === 0 || height === 0) throw new ImageError('CORRUPT_IMAGE', file, `declares an empty ${width}x${height} image`);
  if (width * height > maxPixels) throw new ImageError('IMAGE_TOO_LARGE', file, `${width}x${height} = ${width * height} pixels exceeds the ${maxPixels}-pixel limit (maxPixels); downscale it first`);
  if (format === 'png') {
    const rgba = decodePng(buf, file);
    return dropAlpha(rgba.data, rgba.width, rgba.height);
  }
  return applyOrientation(decodeJpeg(buf, file, maxPixels), jpegOrientation(buf));
}

export function readImage(path: string, limits: ImageLimits = {}): RgbImage {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    throw new ImageError('NOT_FOUND', path, 'no such file');
  }
  if (stat.isDirectory()) throw new ImageError('UNREADABLE', path, 'is a folder, not an image file (pass the images in it, e.g. DIR/*.jpg, or use `facenet cluster DIR`)');
  const size = stat.size;
  const maxBytes = limits.maxFileBytes ?? DEFAULT_MAX_BYTES;
  if (size > maxBytes) throw new ImageError('FILE_TOO_LARGE', path, `${size} bytes exceeds the ${maxBytes}-byte limit (maxFileBytes)`);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new ImageError('UNREADABLE', path, (err as Error).message);
  }
  return decodeImage(buf, path, limits);
}

function decodePng(buf: Uint8Array, file: string): { data: Uint8Array; width: number; height: number } {
  try {
    const png = PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
    return { data: png.data, width: png.width, height: png.height };
  } catch (err) {
    throw new ImageError('CORRUPT_IMAGE', file, `cannot decode PNG (${(err as Error).message})`);
  }
}

/** RGB straight from jpeg-js (grayscale expanded, CMYK/YCCK converted by it). */
function decodeJpeg(buf: Uint8Array, file: string, maxPixels: number): RgbImage {
  try {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP: maxPixels / 1e6, maxMemoryUsageInMB: 2048 });
    return { data: img.data, width: img.width, height: img.height };
  } catch (err) {
    // jpeg-js decodes CMYK and YCCK only with Adobe's APP14 segment, which says how the inks are stored.
    if (/4 components/.test((err as Error).message)) {
      throw new ImageError('UNSUPPORTED_FORMAT', file, 'a 4-component JPEG without an Adobe segment (CMYK of unknown convention); convert it to RGB');
    }
    throw new ImageError('CORRUPT_IMAGE', file, `cannot decode JPEG (${(err as Error).message})`);
  }
}

function dropAlpha(rgba: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { data, width, height };
}

/**
 * Applies EXIF orientation 1-8 so the image is upright. Output pixel (x, y) reads source pixel
 * src(x, y) below, with W, H the output size (swapped for the 90-degree cases 5-8).
 */
export function applyOrientation(img: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1 || orientation > 8) return img;
  const swap = orientation >= 5;
  const W = swap ? img.height : img.width, H = swap ? img.width : img.height;
  const src = (x: number, y: number): [number, number] => {
    switch (orientation) {
      case 2: return [W - 1 - x, y];          // mirrored
      case 3: return [W - 1 - x, H - 1 - y];  // rotated 180
      case 4: return [x, H - 1 - y];          // flipped vertically
      case 5: return [y, x];                  // transposed
      case 6: return [y, W - 1 - x];          // rotated 90 CW to display
      case 7: return [H - 1 - y, W - 1 - x];  // transversed
      default: return [H - 1 - y, x];         // 8: rotated 90 CCW to display
    }
  };
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const [sx, sy] = src(x, y);
      const s = (sy * img.width + sx) * 3, d = (y * W + x) * 3;
      data[d] = img.data[s]!;
      data[d + 1] = img.data[s + 1]!;
      data[d + 2] = img.data[s + 2]!;
    }
  }
  return { data, width: W, height: H };
}
