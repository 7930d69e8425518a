/**
 * Checkpoints: model state dict, optimizer state and training step in one safetensors file (written
 * atomically: a crash never leaves a half-written checkpoint). Optimizer buffers are stored as
 * "optim.<param index>.<buffer>" float64 tensors; scalars go in the metadata.
 */
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer, OptimizerState } from './optim.js';
import { WeightFileError } from '../errors.js';

export interface CheckpointInfo {
  step: number;
  [key: string]: unknown;
}

export function saveCheckpoint(path: string, model: Module, optimizer: Optimizer | null, info: CheckpointInfo, architecture?: { architecture: string; variant?: string }): void {
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array | Float64Array }>();
  for (const [k, t] of model.stateDict()) tensors.set(k, { shape: t.shape, data: t.data });
  const state = optimizer?.state();
  state?.buffers.forEach((b, i) => { for (const [name, v] of Object.entries(b)) tensors.set(`optim.${i}.${name}`, { shape: [v.length], data: v }); });
  writeSafetensors(path, tensors, {
    format: 'facenet-ts/checkpoint-1',
    ...(architecture ? { architecture: architecture.architecture, ...(architecture.variant ? { variant: architecture.variant } : {}) } : {}),
    info: JSON.stringify(info),
    ...(state ? { optimizer: JSON.stringify({ kind: state.kind, step: state.step, lr: optimizer!.lr }) } : {}),
  });
}

/**
 * Loads a checkpoint into the model and optimizer; returns its info. With `expected`, a checkpoint written
 * for another architecture (its metadata says which; a variant counts where both name one) is refused by
 * name, before the state dict's long list of missing and unexpected tensors would.
 */
export function loadCheckpoint(path: string, model: Module, optimizer: Optimizer | null, expected?: { architecture: string; variant?: string }): CheckpointInfo {
  const { tensors, metadata } = readSafetensors(path);
  if (metadata.format !== 'facenet-ts/checkpoint-1') throw new WeightFileError(path, 'not a facenet-ts training checkpoint');
  const name = (a: { architecture?: string; variant?: string }): string => `${a.architecture}${a.variant ? ` (${a.variant})` : ''}`;
  const differs = expected && metadata.architecture &&
    (metadata.architecture !== expected.architecture || (metadata.variant && expected.variant && metadata.variant !== expected.variant));
  if (differs) {
    throw new WeightFileError(path, `a checkpoint of ${name(metadata)}, not ${name(expected)}: resume with that model, or write to another folder`, 'ARCHITECTURE_MISMATCH');
  }
  const modelEntries = new Map([...tensors].filter(([k]) => !k.startsWith('optim.')));
  model.loadStateDict(modelEntries, { source: path });
  if (optimizer && metadata.optimizer) {
    const meta = JSON.parse(metadata.optimizer) as { kind: string; step: number; lr: number };
    const buffers: OptimizerState['buffers'] = optimizer.params.map(() => ({}));
    for (const [k, t] of tensors) {
      const m = k.match(/^optim\.(\d+)\.(.+)$/);
      if (m) buffers[Number(m[1])]![m[2]!] = Float64Array.from(t.data);
    }
    optimizer.load({ kind: meta.kind, step: meta.step, buffers });
    optimizer.lr = meta.lr;
  }
  return JSON.parse(metadata.info ?? '{"step":0}') as CheckpointInfo;
}
