/**
 * Loads a converted model: a safetensors file whose metadata names the architecture (and variant).
 * The state dict must match the architecture exactly; files written with --allow-missing are refused.
 */
import { WeightFileError } from '../errors.js';
import { decodeSafetensors, readSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { StateDictError } from '../nn/module.js';
import { buildModel, type AnyModel } from './factory.js';
import { GraphModel, type GraphNode } from './graph_model.js';
import { MODEL_SPECS, type ModelSpec } from './specs.js';

export interface LoadedModel {
  model: AnyModel;
  architecture: string;
  variant: string | undefined;
  metadata: Record<string, string>;
  spec: ModelSpec | undefined;
}

/** Loads a converted model file (Node). */
export function loadModelFile(path: string): LoadedModel {
  return loadModel(readSafetensors(path), path);
}

/** Loads a converted model from the file's bytes (e.g. fetched in a browser); `source` names it in errors. */
export function loadModelBytes(bytes: Uint8Array, source = '<buffer>'): LoadedModel {
  return loadModel(decodeSafetensors(bytes, source), source);
}

function loadModel({ tensors, metadata }: SafetensorsFile, path: string): LoadedModel {
  const architecture = metadata.architecture;
  if (!architecture) throw new WeightFileError(path, 'no architecture in the metadata: not a facenet-ts model file (convert it with `facenet convert`)');
  if (metadata.incomplete) throw new WeightFileError(path, `was written with --allow-missing and lacks ${JSON.parse(metadata.incomplete).length} tensors; it cannot run`, 'INCOMPLETE');
  const variant = metadata.variant;
  if (architecture === 'tfjs-graph') {
    if (!metadata.graph) throw new WeightFileError(path, 'a tfjs-graph model without its graph in the metadata');
    const g = JSON.parse(metadata.graph) as { nodes: GraphNode[]; input: string; output: string };
    const model = new GraphModel(g.nodes, tensors, g.input, g.output);
    model.eval();
    const id = metadata.model_id;
    return { model, architecture, variant, metadata, spec: id ? MODEL_SPECS[id] : undefined };
  }
  // Parameters are floating point; an integer or boolean tensor here is a wrong or corrupt file, never
  // something to convert silently (F16/BF16/F64 are widened or kept exactly).
  for (const [name, t] of tensors) {
    if (!['F32', 'F64', 'F16', 'BF16'].includes(t.dtype)) {
      throw new WeightFileError(path, `tensor ${name} is stored as ${t.dtype}, but ${architecture} weights are floating point (F32, F16, BF16 or F64); re-convert the source weights with \`facenet convert\``, 'BAD_DTYPE');
    }
  }
  const model = buildModel(architecture, { variant, init: 'none' }); // every parameter comes from the file
  try {
    model.loadStateDict(tensors, { source: path });
  } catch (err) {
    if (err instanceof StateDictError) throw new WeightFileError(path, err.message, 'STATE_DICT');
    throw err;
  }
  model.eval();
  return { model, architecture, variant, metadata, spec: MODEL_SPECS[architecture] };
}
