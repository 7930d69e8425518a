/**
 * safetensors, our native weight format (readable by the Python/Rust safetensors libraries):
 *   [8 bytes: little-endian u64 header length N][N bytes: JSON header][raw little-endian tensor bytes]
 * Header: { name: { dtype, shape, data_offsets: [begin, end] }, ..., "__metadata__": { string: string } },
 * offsets relative to the start of the data section. The reader validates everything before touching
 * data: header bounds, JSON shape, known dtypes, offsets inside the data section, byte length =
 * prod(shape) x dtype size, and no overlaps or holes. F32 tensors are views on the file's buffer (no copy)
 * when aligned; other float/int dtypes are converted on read.
 */
import { WeightFileError } from '../errors.js';
import { requireBuiltin, writeFileAtomically } from '../util/node_builtin.js';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const DTYPE_SIZE: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafeTensorEntry {
  /** The stored dtype. */
  dtype: SafeDType;
  shape: number[];
  /** Values: F64 stays Float64Array, integers become Float64Array, F32/F16/BF16 become Float32Array. */
  data: Float32Array | Float64Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensorEntry>;
  metadata: Record<string, string>;
}

// F32/F64 tensors are views on the file's bytes, which are little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('facenet-ts safetensors I/O assumes a little-endian host');

export function encodeSafetensors(tensors: Map<string, { shape: readonly number[]; data: Float32Array | Float64Array }>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new WeightFileError('<safetensors>', 'a tensor may not be named __metadata__');
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.data instanceof Float64Array ? 'F64' : 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (headerBytes.length % 8)) % 8; // keeps the data section 8-byte aligned
  if (pad > 0) headerBytes = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes atomically (writeFileAtomically: no partial file is ever left; a failure is WRITE_FAILED). */
export function writeSafetensors(path: string, tensors: Map<string, { shape: readonly number[]; data: Float32Array | Float64Array }>, metadata: Record<string, string> = {}): void {
  writeFileAtomically(path, encodeSafetensors(tensors, metadata));
}

export function readSafetensors(path: string): SafetensorsFile {
  const { readFileSync } = requireBuiltin('node:fs', 'readSafetensors');
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new WeightFileError(path, `cannot read: ${(err as Error).message}`, 'NOT_FOUND');
  }
  return decodeSafetensors(buf, path);
}

interface RawEntry { dtype: SafeDType; shape: number[]; begin: number; end: number }

const view = (buf: Uint8Array): DataView => new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

function parseHeader(buf: Uint8Array, file: string): { entries: Map<string, RawEntry>; metadata: Record<string, string>; dataStart: number } {
  const fail = (problem: string): never => { throw new WeightFileError(file, `not a valid safetensors file: ${problem}`); };
  if (buf.length < 8) fail(`${buf.length} bytes is shorter than the 8-byte header length`);
  const n = view(buf).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) fail(`header length ${n} exceeds the file (${buf.length} bytes) or the ${MAX_HEADER}-byte limit`);
  const dataStart = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, dataStart)));
  } catch (err) {
    return fail(`header is not JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries = new Map<string, RawEntry>();
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as object)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`tensor ${name}: entry is not an object`);
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e.dtype as SafeDType;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) fail(`tensor ${name}: unknown dtype ${JSON.stringify(e.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${name}: shape must be a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) fail(`tensor ${name}: data_offsets must be [begin, end]`);
    const [begin, end] = offs as [number, number];
    if (begin > end || dataStart + end > buf.length) fail(`tensor ${name}: data_offsets [${begin}, ${end}] are outside the ${buf.length - dataStart}-byte data section`);
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * DTYPE_SIZE[dtype]) fail(`tensor ${name}: ${end - begin} bytes for shape [${shape}] of ${dtype} (needs ${count * DTYPE_SIZE[dtype]})`);
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  // The data section must be covered exactly once: sorted by begin, each tensor starts where the last ended.
  let expected = 0;
  for (const [name, e] of [...entries].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)) {
    if (e.begin < expected) fail(`tensor ${name}: data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ending at ${expected})`);
    if (e.begin > expected) fail(`tensor ${name}: a hole of ${e.begin - expected} bytes before it`);
    expected = e.end;
  }
  if (dataStart + expected !== buf.length) fail(`${buf.length - dataStart - expected} trailing bytes after the last tensor`);
  return { entries, metadata, dataStart };
}

export function decodeSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  const { entries, metadata, dataStart } = parseHeader(buf, file);
  const tensors = new Map<string, SafeTensorEntry>();
  for (const [name, e] of entries) tensors.set(name, { dtype: e.dtype, shape: e.shape, data: decodeData(buf, dataStart + e.begin, dataStart + e.end, e.dtype) });
  return { tensors, metadata };
}

function decodeData(buf: Uint8Array, start: number, end: number, dtype: SafeDType): Float32Array | Float64Array {
  const n = (end - start) / DTYPE_SIZE[dtype];
  const abs = buf.byteOffset + start, v = view(buf);
  switch (dtype) {
    case 'F32':
      return abs % 4 === 0 ? new Float32Array(buf.buffer, abs, n) : new Float32Array(buf.buffer.slice(abs, abs + 4 * n));
    case 'F64':
      return abs % 8 === 0 ? new Float64Array(buf.buffer, abs, n) : new Float64Array(buf.buffer.slice(abs, abs + 8 * n));
    case 'F16':
      return Float32Array.from({ length: n }, (_, i) => halfToFloat(v.getUint16(start + 2 * i, true)));
    case 'BF16':
      return Float32Array.from({ length: n }, (_, i) => bf16ToFloat(v.getUint16(start + 2 * i, true)));
    case 'I64':
      return Float64Array.from({ length: n }, (_, i) => Number(v.getBigInt64(start + 8 * i, true)));
    case 'I32':
      return Float64Array.from({ length: n }, (_, i) => v.getInt32(start + 4 * i, true));
    case 'I16':
      return Float64Array.from({ length: n }, (_, i) => v.getInt16(start + 2 * i, true));
    case 'I8':
      return Float64Array.from({ length: n }, (_, i) => v.getInt8(start + i));
    case 'U8':
    case 'BOOL':
      return Float64Array.from({ length: n }, (_, i) => buf[start + i]!);
  }
}

/** IEEE 754 half precision -> number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function bf16ToFloat(b: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, b << 16);
  return view.getFloat32(0);
}
