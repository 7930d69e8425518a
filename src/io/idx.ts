/** IDX files (MNIST / Fashion-MNIST), optionally gzipped: magic 2051 = images [N, rows, cols] u8, 2049 = labels [N] u8. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { FacenetError } from '../errors.js';

export interface IdxImages { count: number; rows: number; cols: number; data: Uint8Array }

function load(path: string): Buffer {
  let buf: Buffer;
  try { buf = readFileSync(path); } catch { throw new FacenetError('NOT_FOUND', `${path}: no such file`); }
  return buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
}

export function readIdxImages(path: string): IdxImages {
  const b = load(path);
  if (b.length < 16 || b.readUInt32BE(0) !== 2051) throw new FacenetError('BAD_DATA', `${path}: not an IDX image file`);
  const count = b.readUInt32BE(4), rows = b.readUInt32BE(8), cols = b.readUInt32BE(12);
  if (b.length < 16 + count * rows * cols) throw new FacenetError('BAD_DATA', `${path}: truncated (${count} images of ${rows}x${cols} declared)`);
  return { count, rows, cols, data: new Uint8Array(b.buffer, b.byteOffset + 16, count * rows * cols) };
}

export function readIdxLabels(path: string): Uint8Array {
  const b = load(path);
  if (b.length < 8 || b.readUInt32BE(0) !== 2049) throw new FacenetError('BAD_DATA', `${path}: not an IDX label file`);
  const count = b.readUInt32BE(4);
  if (b.length < 8 + count) throw new FacenetError('BAD_DATA', `${path}: truncated`);
  return new Uint8Array(b.buffer, b.byteOffset + 8, count);
}
