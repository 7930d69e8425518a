/**
 * `facenet convert`: reads weights in a source format, maps them onto an architecture's state dict with
 * shape checks, and writes one safetensors file whose metadata says what it is (architecture, variant,
 * input spec, source, license, sha256 of every source file). A model with missing tensors is refused
 * (unless allowMissing, for inspection), naming exactly what is missing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, WeightFileError } from '../../errors.js';
import { buildModel, defaultVariant } from '../../models/factory.js';
import { MODEL_SPECS } from '../../models/specs.js';
import { writeSafetensors } from '../safetensors.js';
import { readKerasOpenFaceCsv } from './keras_csv.js';
import { readTorchStateDict } from './torch_pt.js';
import { readTfjsManifestFile } from './tfjs_manifest.js';
import { fromFaceApiManifest, mtcnnFromFaceApi, type Entry } from './faceapi.js';
import { readTfjsGraph } from './tfjs_graph.js';
import { GraphModel } from '../../models/graph_model.js';

const FACE_API_ARCHS = ['dlib-resnet34', 'tiny-face-detector', 'landmarks68'];

export const SOURCE_FORMATS = ['keras-openface-csv', 'torch-pt', 'tfjs-manifest', 'tfjs-graph'] as const;
export type SourceFormat = (typeof SOURCE_FORMATS)[number];

export interface ConvertOptions {
  src: string;
  format: SourceFormat;
  arch: string;
  variant?: string;
  out: string;
  allowMissing?: boolean;
  /** Provenance for the metadata, e.g. "npm:@vladmandic/face-api@1.7.15/model/..." (default: the src path). */
  source?: string;
  license?: string;
  /** Registry id, recorded for models whose architecture does not name them (tfjs-graph). */
  modelId?: string;
}

export interface ConvertReport {
  out: string;
  architecture: string;
  variant: string | null;
  tensors: number;
  /** State-dict names (or source files, for CSV) the source lacks. */
  missing: string[];
  /** Source tensors that have no place in the architecture. */
  unexpected: string[];
  /** Source tensors deliberately dropped (training-only state), with the reason. */
  ignored: string[];
  sourceSha256: Record<string, string>;
}

interface Extracted {
  tensors: Map<string, Entry | { shape: readonly number[]; data: Float32Array | Float64Array }>;
  files: string[];
  missing?: string[];
  unexpected?: string[];
  ignored?: string[];
}

/** Training-only entries of PyTorch checkpoints that inference does not use. */
const TORCH_IGNORED: [RegExp, string][] = [
  [/\.num_batches_tracked$/, 'batchnorm step counter'],
  [/^logits\./, 'training classifier of facenet-pytorch checkpoints'],
];

function extract(o: ConvertOptions, targets: Map<string, readonly number[]>): Extracted {
  switch (o.format) {
    case 'keras-openface-csv': {
      if (o.arch !== 'nn4.small2') throw new ArgumentError('convert', `keras-openface-csv holds nn4.small2 weights, not ${o.arch}`);
      const r = readKerasOpenFaceCsv(o.src, targets);
      return { tensors: r.tensors, files: r.files, missing: r.missingFiles, unexpected: r.unusedFiles };
    }
    case 'torch-pt': {
      const sd = readTorchStateDict(o.src);
      const ignored: string[] = [];
      for (const key of [...sd.keys()]) {
        const rule = TORCH_IGNORED.find(([re]) => re.test(key) && !targets.has(key));
        if (rule) { ignored.push(`${key} (${rule[1]})`); sd.delete(key); }
      }
      return { tensors: sd, files: [o.src], ignored };
    }
    case 'tfjs-manifest': {
      const weights = readTfjsManifestFile(o.src);
      const files = [o.src, ...shardFiles(o.src)];
      const net = o.arch.match(/^mtcnn-(pnet|rnet|onet)$/)?.[1] as 'pnet' | 'rnet' | 'onet' | undefined;
      if (net) {
        const { tensors } = mtcnnFromFaceApi(weights, net, o.src);
        return { tensors, files, ignored: [...weights.keys()].filter((k) => !k.startsWith(`${net}/`)).map((k) => `${k} (another MTCNN stage)`) };
      }
      if (!FACE_API_ARCHS.includes(o.arch)) throw new ArgumentError('convert', `no TF.js manifest mapping for architecture ${o.arch} (supported: mtcnn-pnet, mtcnn-rnet, mtcnn-onet, ${FACE_API_ARCHS.join(', ')})`);
      const { tensors, used } = fromFaceApiManifest(weights, targets);
      return { tensors, files, unexpected: [...weights.keys()].filter((k) => !used.has(k)) };
    }
    case 'tfjs-graph':
      throw new ArgumentError('convert', 'tfjs-graph models convert through convertTfjsGraph (architecture tfjs-graph)');
  }
}

function shardFiles(manifest: string): string[] {
  const json = JSON.parse(readFileSync(manifest, 'utf8')) as { paths: string[] }[] | { weightsManifest: { paths: string[] }[] };
  const groups = Array.isArray(json) ? json : json.weightsManifest;
  return groups.flatMap((g) => g.paths.map((p) => join(manifest, '..', p)));
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** TF.js graph models carry their architecture: the graph goes into the metadata beside the weights. */
function convertTfjsGraph(o: ConvertOptions): ConvertReport {
  const g = readTfjsGraph(o.src);
  new GraphModel(g.nodes, g.weights, g.input, g.output); // validates ops, weights and topology now, not at first use
  const files = [o.src, ...shardFiles(o.src)];
  const sourceSha256 = Object.fromEntries(files.map((f) => [f, sha256File(f)]));
  writeSafetensors(o.out, new Map([...g.weights].map(([k, t]) => [k, { shape: t.shape, data: t.data }])), {
    format: 'facenet-ts/1', architecture: 'tfjs-graph', graph: JSON.stringify({ nodes: g.nodes, input: g.input, output: g.output }),
    source: o.source ?? o.src, source_format: 'tfjs-graph', license: o.license ?? 'unknown', source_sha256: JSON.stringify(sourceSha256),
    ...(o.modelId ? { model_id: o.modelId } : {}),
  });
  return { out: o.out, architecture: 'tfjs-graph', variant: null, tensors: g.weights.size, missing: [], unexpected: [], ignored: [], sourceSha256 };
}

export function convertWeights(o: ConvertOptions): ConvertReport {
  if (o.format === 'tfjs-graph') return convertTfjsGraph(o);
  const variant = o.variant ?? defaultVariant(o.arch);
  const model = buildModel(o.arch, { variant });
  const targets = new Map([...model.stateDict()].map(([k, t]) => [k, t.shape]));
  const ex = extract(o, targets);
  const missing = ex.missing ?? [...targets.keys()].filter((k) => !ex.tensors.has(k));
  const unexpected = ex.unexpected ?? [...ex.tensors.keys()].filter((k) => !targets.has(k));
  for (const [name, t] of ex.tensors) {
    const shape = targets.get(name);
    if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))) {
      throw new WeightFileError(o.src, `tensor ${name} has shape [${t.shape.join(', ')}], ${o.arch} needs [${shape.join(', ')}]`, 'SHAPE_MISMATCH');
    }
  }
  if ((missing.length > 0 && !o.allowMissing) || unexpected.length > 0) {
    const parts = [missing.length ? `missing ${missing.length}: ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.length}: ${unexpected.join(', ')}` : ''].filter(Boolean);
    throw new WeightFileError(o.src, `does not hold a complete ${o.arch} (${parts.join('; ')})${missing.length && !unexpected.length ? '; pass --allow-missing to write the rest for inspection' : ''}`, 'INCOMPLETE');
  }
  const tensors = new Map([...targets.keys()].filter((k) => ex.tensors.has(k)).map((k) => [k, ex.tensors.get(k)!]));
  const sourceSha256 = Object.fromEntries(ex.files.map((f) => [f, sha256File(f)]));
  const spec = MODEL_SPECS[o.arch];
  writeSafetensors(o.out, new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }])), {
    format: 'facenet-ts/1',
    architecture: o.arch,
    ...(variant ? { variant } : {}),
    ...(spec ? { input: JSON.stringify({ size: spec.inputSize, channelOrder: spec.channelOrder, layout: spec.layout, normalization: spec.normalization }), embedding_dim: String(spec.embeddingDim) } : {}),
    source: o.source ?? o.src,
    source_format: o.format,
    license: o.license ?? 'unknown',
    source_sha256: JSON.stringify(sourceSha256),
    ...(missing.length ? { incomplete: JSON.stringify(missing) } : {}),
  });
  return { out: o.out, architecture: o.arch, variant: variant ?? null, tensors: tensors.size, missing, unexpected, ignored: ex.ignored ?? [], sourceSha256 };
}
