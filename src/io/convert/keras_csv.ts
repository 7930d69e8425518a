/**
 * Keras-OpenFace CSV weights (github vsyw/Keras-OpenFace, weights/): one CSV file per tensor, a single line
 * of comma-separated decimals. Conv weights are flattened in Torch order [out, in, kh, kw], dense_w is
 * [128, 736]. File stems map to our nn4.small2 state-dict names:
 *   conv1_w / bn1_w,_b,_m,_v                   -> conv1.conv.weight / conv1.bn.weight, bias, running_mean, running_var
 *   inception_3a_3x3_conv1 / _bn1              -> inception_3a.3x3_reduce.conv / .bn   (conv2 / bn2 -> 3x3)
 *   inception_3a_pool_conv / _pool_bn          -> inception_3a.pool_proj.conv / .bn
 *   dense_w / dense_b                          -> dense.weight / dense.bias
 * The two stray files inception_5a_3x3_conv2_m/_v.csv in the upstream folder are ignored.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WeightFileError } from '../../errors.js';

export interface TensorEntry {
  shape: readonly number[];
  data: Float32Array;
}

const STRAY = new Set(['inception_5a_3x3_conv2_m', 'inception_5a_3x3_conv2_v']);
const BN_FIELDS: Record<string, string> = { w: 'weight', b: 'bias', m: 'running_mean', v: 'running_var' };

/** Our state-dict name -> the CSV file stem that holds it. */
export function csvStemFor(name: string): string {
  const parts = name.split('.');
  const field = parts[parts.length - 1]!;
  if (parts[0] === 'dense') return `dense_${field === 'weight' ? 'w' : 'b'}`;
  const letter = Object.entries(BN_FIELDS).find(([, f]) => f === field)![0];
  const isConv = parts[parts.length - 2] === 'conv';
  const stem = parts[0]!.match(/^conv(\d)$/);
  if (stem) return `${isConv ? 'conv' : 'bn'}${stem[1]}_${letter}`;
  const unit = parts[1]!; // 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj, 1x1
  const kind = isConv ? 'conv' : 'bn';
  const local =
    unit === 'pool_proj' ? `pool_${kind}` :
    unit === '1x1' ? `1x1_${kind}` :
    unit.endsWith('_reduce') ? `${unit.slice(0, 3)}_${kind}1` : `${unit}_${kind}2`;
  return `${parts[0]}_${local}_${letter}`;
}

export function parseCsvValues(text: string, file: string): Float32Array {
  const fields = text.trim().split(/[,\s]+/).filter((s) => s.length > 0);
  const out = new Float32Array(fields.length);
  for (let i = 0; i < fields.length; i++) {
    const v = Number(fields[i]);
    if (!Number.isFinite(v)) throw new WeightFileError(file, `value ${i} is not a finite number: ${JSON.stringify(fields[i]!.slice(0, 40))}`);
    out[i] = v;
  }
  return out;
}

export interface CsvReadResult {
  tensors: Map<string, TensorEntry>;
  /** Files the model needs that the directory lacks. */
  missingFiles: string[];
  /** CSV files present but not used by the model (the stray files excluded). */
  unusedFiles: string[];
  /** The files read, in state-dict order. */
  files: string[];
}

/**
 * Reads the CSV directory for a model whose state dict has the given shapes. Each file's element count
 * must equal the product of the target shape. Missing files are collected (not thrown) so that the
 * caller can report all of them at once.
 */
export function readKerasOpenFaceCsv(dir: string, targetShapes: Map<string, readonly number[]>): CsvReadResult {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new WeightFileError(dir, 'not a directory of Keras-OpenFace CSV files', 'NOT_FOUND');
  const present = new Set(readdirSync(dir).filter((f) => f.endsWith('.csv')).map((f) => f.slice(0, -4)));
  const tensors = new Map<string, TensorEntry>();
  const missingFiles: string[] = [];
  const used = new Set<string>();
  const files: string[] = [];
  for (const [name, shape] of targetShapes) {
    const stem = csvStemFor(name);
    used.add(stem);
    if (!present.has(stem)) {
      missingFiles.push(`${stem}.csv`);
      continue;
    }
    const file = join(dir, `${stem}.csv`);
    files.push(file);
    const data = parseCsvValues(readFileSync(file, 'utf8'), file);
    const expected = shape.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new WeightFileError(file, `has ${data.length} values, ${name} of shape [${shape.join(', ')}] needs ${expected}`);
    tensors.set(name, { shape, data });
  }
  const unusedFiles = [...present].filter((s) => !used.has(s) && !STRAY.has(s)).map((s) => `${s}.csv`);
  return { tensors, missingFiles: missingFiles.sort(), unusedFiles, files };
}
