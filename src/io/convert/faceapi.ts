/**
 * face-api.js TF.js manifests -> our state dicts. TF stores conv filters HWIO and dense weights
 * [in, out]; ours are OIHW and [out, in].
 * MTCNN: face-api.js and facenet-pytorch carry the same Caffe-derived weights, but facenet-pytorch's
 * convolutions are spatially transposed (kernel [kh, kw] -> [kw, kh]) because its nets run on transposed
 * images; our MTCNN follows facenet-pytorch, so the kernels are transposed here. The dense layers need no
 * reordering: face-api flattens its maps in (h, w, c) order, which is facenet-pytorch's (w, h, c) order of
 * the transposed maps.
 */
import { WeightFileError } from '../../errors.js';
import { depthwiseToOihw, hwioToOihw, transpose2d, type TfjsTensor } from './tfjs_manifest.js';

export type Entry = { shape: readonly number[]; data: Float32Array };

/** Swaps the two spatial axes of an HWIO filter. */
function transposeKernel(t: TfjsTensor): TfjsTensor {
  const [KH, KW, I, O] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.data.length);
  for (let a = 0; a < KH; a++) for (let b = 0; b < KW; b++) out.set(t.data.subarray((a * KW + b) * I * O, (a * KW + b + 1) * I * O), (b * KH + a) * I * O);
  return { shape: [KW, KH, I, O], data: out };
}

const MTCNN_LAYERS: Record<'pnet' | 'rnet' | 'onet', [ours: string, theirs: string, kind: 'conv' | 'dense' | 'vector'][]> = {
  pnet: [['conv1', 'conv1', 'conv'], ['prelu1', 'prelu1_alpha', 'vector'], ['conv2', 'conv2', 'conv'], ['prelu2', 'prelu2_alpha', 'vector'],
    ['conv3', 'conv3', 'conv'], ['prelu3', 'prelu3_alpha', 'vector'], ['conv4_1', 'conv4_1', 'conv'], ['conv4_2', 'conv4_2', 'conv']],
  rnet: [['conv1', 'conv1', 'conv'], ['prelu1', 'prelu1_alpha', 'vector'], ['conv2', 'conv2', 'conv'], ['prelu2', 'prelu2_alpha', 'vector'],
    ['conv3', 'conv3', 'conv'], ['prelu3', 'prelu3_alpha', 'vector'], ['dense4', 'fc1', 'dense'], ['prelu4', 'prelu4_alpha', 'vector'],
    ['dense5_1', 'fc2_1', 'dense'], ['dense5_2', 'fc2_2', 'dense']],
  onet: [['conv1', 'conv1', 'conv'], ['prelu1', 'prelu1_alpha', 'vector'], ['conv2', 'conv2', 'conv'], ['prelu2', 'prelu2_alpha', 'vector'],
    ['conv3', 'conv3', 'conv'], ['prelu3', 'prelu3_alpha', 'vector'], ['conv4', 'conv4', 'conv'], ['prelu4', 'prelu4_alpha', 'vector'],
    ['dense5', 'fc1', 'dense'], ['prelu5', 'prelu5_alpha', 'vector'], ['dense6_1', 'fc2_1', 'dense'], ['dense6_2', 'fc2_2', 'dense'], ['dense6_3', 'fc2_3', 'dense']],
};

/** Maps one MTCNN stage of face-api's mtcnn_model manifest onto our PNet/RNet/ONet names. */
export function mtcnnFromFaceApi(weights: Map<string, TfjsTensor>, net: 'pnet' | 'rnet' | 'onet', file: string): { tensors: Map<string, Entry>; used: Set<string> } {
  const tensors = new Map<string, Entry>();
  const used = new Set<string>();
  const get = (name: string): TfjsTensor => {
    const t = weights.get(name);
    if (!t) throw new WeightFileError(file, `manifest has no weight ${name}`);
    used.add(name);
    return t;
  };
  for (const [ours, theirs, kind] of MTCNN_LAYERS[net]) {
    if (kind === 'vector') {
      tensors.set(`${ours}.weight`, get(`${net}/${theirs}`));
      continue;
    }
    const w = get(`${net}/${theirs}/weights`);
    tensors.set(`${ours}.weight`, kind === 'conv' ? hwioToOihw(transposeKernel(w)) : transpose2d(w));
    tensors.set(`${ours}.bias`, get(`${net}/${theirs}/bias`));
  }
  return { tensors, used };
}

/**
 * The face-api.js names a state-dict entry may have, most specific first. Our module names mirror
 * face-api's with "." for "/": conv.weight <- conv/filters, separable depthwise/pointwise filters,
 * the bias of a separable conv stored beside them, scale (affine) weights/biases, and fc weights.
 */
export function faceApiCandidates(name: string): string[] {
  const parts = name.split('.');
  const field = parts.pop()!;
  const owner = parts[parts.length - 1];
  const base = parts.join('/');
  if (owner === 'depthwise') return [`${parts.slice(0, -1).join('/')}/depthwise_filter`];
  if (owner === 'pointwise') return field === 'weight' ? [`${parts.slice(0, -1).join('/')}/pointwise_filter`] : [`${parts.slice(0, -1).join('/')}/bias`];
  if (owner === 'scale') return [`${base}/${field === 'weight' ? 'weights' : 'biases'}`];
  return field === 'weight' ? [`${base}/filters`, `${base}/weights`, base] : [`${base}/bias`];
}

/** Maps a face-api manifest onto our state dict by name, converting TF layouts to ours. */
export function fromFaceApiManifest(weights: Map<string, TfjsTensor>, targets: Map<string, readonly number[]>): { tensors: Map<string, Entry>; used: Set<string> } {
  const tensors = new Map<string, Entry>();
  const used = new Set<string>();
  for (const [name, shape] of targets) {
    const source = faceApiCandidates(name).find((c) => weights.has(c));
    if (!source) continue;
    used.add(source);
    const t = weights.get(source)!;
    const converted = t.shape.length === 4
      ? (source.endsWith('depthwise_filter') ? depthwiseToOihw(t) : hwioToOihw(t))
      : t.shape.length === 2 && shape.length === 2 ? transpose2d(t) : t;
    tensors.set(name, converted);
  }
  return { tensors, used };
}
