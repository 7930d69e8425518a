/**
 * TF.js graph models (model.json with `modelTopology.node` and `weightsManifest`): the nodes are kept with
 * their attributes decoded to plain JSON (base64 strings, int lists, floats), the weights read from the
 * shards. Written to safetensors as the weights plus the graph in the metadata, so the converted file
 * alone rebuilds the model (src/models/graph_model.ts).
 */
import { dirname } from 'node:path';
import { WeightFileError } from '../../errors.js';
import type { GraphNode } from '../../models/graph_model.js';
import { readJsonFile, readTfjsWeights, type ManifestGroup, type TfjsTensor } from './tfjs_manifest.js';

interface RawNode { name: string; op: string; input?: string[]; attr?: Record<string, Record<string, unknown>> }
interface ModelJson {
  modelTopology?: { node?: RawNode[] };
  weightsManifest?: ManifestGroup[];
  signature?: { inputs?: Record<string, { name: string }>; outputs?: Record<string, { name: string }> };
  userDefinedMetadata?: { signature?: ModelJson['signature'] };
}

function decodeAttr(v: Record<string, unknown>): unknown {
  if ('s' in v) return Buffer.from(String(v.s), 'base64').toString('utf8');
  if ('i' in v) return Number(v.i);
  if ('f' in v) return Number(v.f);
  if ('b' in v) return Boolean(v.b);
  if ('type' in v) return v.type;
  if ('list' in v) {
    const l = v.list as { i?: unknown[]; s?: unknown[]; f?: unknown[] };
    if (l.s) return l.s.map((x) => Buffer.from(String(x), 'base64').toString('utf8'));
    if (l.i) return l.i.map(Number);
    if (l.f) return l.f.map(Number);
    return [];
  }
  return null; // tensor values and shapes: the weights come from the manifest
}

export interface TfjsGraph {
  nodes: GraphNode[];
  weights: Map<string, TfjsTensor>;
  input: string;
  output: string;
}

export function readTfjsGraph(modelJson: string): TfjsGraph {
  const json = readJsonFile(modelJson) as ModelJson;
  const raw = json.modelTopology?.node;
  if (!Array.isArray(raw) || !json.weightsManifest) throw new WeightFileError(modelJson, 'not a TF.js graph model (needs modelTopology.node and weightsManifest)');
  const nodes: GraphNode[] = raw.map((n) => ({
    name: n.name, op: n.op, input: n.input ?? [],
    attr: Object.fromEntries(Object.entries(n.attr ?? {}).filter(([k]) => k !== 'value' && k !== 'dtype' && k !== 'T').map(([k, v]) => [k, decodeAttr(v)])),
  }));
  const signature = json.signature ?? json.userDefinedMetadata?.signature;
  const placeholders = nodes.filter((n) => n.op === 'Placeholder');
  const input = Object.values(signature?.inputs ?? {})[0]?.name?.replace(/:\d+$/, '') ?? placeholders[0]?.name;
  const consumed = new Set(nodes.flatMap((n) => n.input.map((i) => i.replace(/^\^/, '').replace(/:\d+$/, ''))));
  const output = Object.values(signature?.outputs ?? {})[0]?.name?.replace(/:\d+$/, '') ?? nodes.filter((n) => !consumed.has(n.name) && n.op !== 'Const').pop()?.name;
  if (!input || !output) throw new WeightFileError(modelJson, 'cannot tell the input and output nodes (no signature, no Placeholder)');
  const weights = readTfjsWeights(json.weightsManifest, dirname(modelJson), modelJson);
  return { nodes, weights, input, output };
}

