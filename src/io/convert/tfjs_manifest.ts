/**
 * TF.js weight manifests (`*-weights_manifest.json` or the `weightsManifest` of a model.json): groups of
 * weights stored back to back in binary shards. Each weight has a name, shape, dtype and optional
 * quantization: uint8/uint16 with scale and min (value = q * scale + min), or float16. Shards of a group
 * are concatenated in order before slicing. Missing or short shards are typed errors naming the file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { WeightFileError } from '../../errors.js';
import { halfToFloat } from '../safetensors.js';

export interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; scale?: number; min?: number };
}

export interface ManifestGroup {
  paths: string[];
  weights: ManifestWeight[];
}

export interface TfjsTensor {
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 };

function decodeWeight(w: ManifestWeight, bytes: Buffer, at: number, count: number): Float32Array {
  const out = new Float32Array(count);
  const q = w.quantization;
  if (q) {
    const scale = q.scale ?? 1, min = q.min ?? 0;
    for (let i = 0; i < count; i++) {
      out[i] = q.dtype === 'uint8' ? bytes[at + i]! * scale + min
        : q.dtype === 'uint16' ? bytes.readUInt16LE(at + 2 * i) * scale + min
        : halfToFloat(bytes.readUInt16LE(at + 2 * i));
    }
    return out;
  }
  for (let i = 0; i < count; i++) {
    out[i] = w.dtype === 'float32' ? bytes.readFloatLE(at + 4 * i) : w.dtype === 'int32' ? bytes.readInt32LE(at + 4 * i) : bytes[at + i]!;
  }
  return out;
}

/** Reads the weights of a manifest (a JSON array of groups); shard paths are relative to `baseDir`. */
export function readTfjsWeights(groups: ManifestGroup[], baseDir: string, manifestFile: string): Map<string, TfjsTensor> {
  if (!Array.isArray(groups)) throw new WeightFileError(manifestFile, 'weights manifest is not an array of {paths, weights} groups');
  const out = new Map<string, TfjsTensor>();
  for (const group of groups) {
    const shards = group.paths.map((p) => {
      const file = join(baseDir, p);
      if (p.includes('..') || !existsSync(file)) throw new WeightFileError(manifestFile, `shard ${p} is missing (looked for ${file})`, 'NOT_FOUND');
      return readFileSync(file);
    });
    const bytes = Buffer.concat(shards);
    let at = 0;
    for (const w of group.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const itemBytes = w.quantization ? BYTES[w.quantization.dtype] : BYTES[w.dtype];
      if (itemBytes === undefined) throw new WeightFileError(manifestFile, `weight ${w.name}: unsupported dtype ${w.quantization?.dtype ?? w.dtype}`);
      const size = count * itemBytes;
      if (at + size > bytes.length) {
        throw new WeightFileError(manifestFile, `weight ${w.name} needs bytes ${at}..${at + size} but the shards (${group.paths.join(', ')}) hold ${bytes.length}: truncated shard?`);
      }
      out.set(w.name, { shape: w.shape, data: decodeWeight(w, bytes, at, count) });
      at += size;
    }
    if (at !== bytes.length) throw new WeightFileError(manifestFile, `shards of group [${group.paths.join(', ')}] hold ${bytes.length - at} bytes more than its weights need`);
  }
  return out;
}

/** Reads a JSON file: unreadable is NOT_FOUND, unparsable is BAD_WEIGHTS, both naming the file. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new WeightFileError(file, `cannot read: ${(err as Error).message}`, 'NOT_FOUND');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WeightFileError(file, `not JSON: ${(err as Error).message}`);
  }
}

export function readTfjsManifestFile(manifestFile: string): Map<string, TfjsTensor> {
  const json = readJsonFile(manifestFile);
  const groups = Array.isArray(json) ? json : (json as { weightsManifest?: unknown }).weightsManifest;
  return readTfjsWeights(groups as ManifestGroup[], dirname(manifestFile), manifestFile);
}

/** TF conv filter [KH, KW, IN, OUT] -> ours [OUT, IN, KH, KW]. */
export function hwioToOihw(t: TfjsTensor): { shape: number[]; data: Float32Array } {
  const [KH, KW, IN, OUT] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.data.length);
  for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) for (let i = 0; i < IN; i++) for (let o = 0; o < OUT; o++) {
    out[((o * IN + i) * KH + kh) * KW + kw] = t.data[((kh * KW + kw) * IN + i) * OUT + o]!;
  }
  return { shape: [OUT, IN, KH, KW], data: out };
}

/** TF depthwise filter [KH, KW, C, M] -> ours [C*M, 1, KH, KW]. */
export function depthwiseToOihw(t: TfjsTensor): { shape: number[]; data: Float32Array } {
  const [KH, KW, C, M] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.data.length);
  for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) for (let c = 0; c < C; c++) for (let m = 0; m < M; m++) {
    out[((c * M + m) * KH + kh) * KW + kw] = t.data[((kh * KW + kw) * C + c) * M + m]!;
  }
  return { shape: [C * M, 1, KH, KW], data: out };
}

/** TF dense weights [IN, OUT] -> ours [OUT, IN]. */
export function transpose2d(t: TfjsTensor): { shape: number[]; data: Float32Array } {
  const [IN, OUT] = t.shape as [number, number];
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < IN; i++) for (let o = 0; o < OUT; o++) out[o * IN + i] = t.data[i * OUT + o]!;
  return { shape: [OUT, IN], data: out };
}
