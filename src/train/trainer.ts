/**
 * The training loop shared by `facenet train` and the demos: each step samples a batch, computes the loss
 * and its diagnostics, backpropagates, updates with the scheduled learning rate, and frees every
 * intermediate, whose arrays the next step reuses (tidyAndRecycle). Progress goes to a callback;
 * checkpoints are written atomically every N steps and at the end; `resume` continues from a checkpoint
 * with the same model, optimizer state and step.
 */
import { clearPool, tidyAndRecycle } from '../autograd/memory.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { Optimizer, Schedule } from './optim.js';

export interface StepResult {
  loss: Tensor;
  diagnostics?: Record<string, unknown>;
}

export interface TrainOptions {
  model: Module;
  optimizer: Optimizer;
  schedule: Schedule;
  steps: number;
  /** Builds the loss for step `step` (sampling its own batch). Runs inside tidyAndRecycle(): keep no intermediate's typed array past the step. */
  lossFn: (step: number) => StepResult;
  logEvery?: number;
  log?: (record: { step: number; loss: number; lr: number; ms: number; diagnostics?: Record<string, unknown> }) => void;
  checkpoint?: { path: string; every: number; architecture?: { architecture: string; variant?: string } };
  resumeFrom?: string;
}

export interface TrainSummary {
  steps: number;
  firstLoss: number;
  lastLoss: number;
  seconds: number;
}

export function train(o: TrainOptions): TrainSummary {
  o.model.train();
  let start = 0;
  if (o.resumeFrom) start = loadCheckpoint(o.resumeFrom, o.model, o.optimizer, o.checkpoint?.architecture).step;
  const t0 = performance.now();
  let firstLoss = NaN, lastLoss = NaN;
  for (let step = start; step < o.steps; step++) {
    const t = performance.now();
    o.optimizer.lr = o.schedule(step);
    const { loss, diagnostics } = tidyAndRecycle(() => { // each step's arrays are reused by the next
      o.optimizer.zeroGrad();
      const r = o.lossFn(step);
      r.loss.backward();
      o.optimizer.update();
      return { loss: r.loss.item(), diagnostics: r.diagnostics };
    }, { training: true });
    if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step}; lower the learning rate`);
    if (Number.isNaN(firstLoss)) firstLoss = loss;
    lastLoss = loss;
    if (o.log && (step % (o.logEvery ?? 10) === 0 || step === o.steps - 1)) o.log({ step, loss, lr: o.optimizer.lr, ms: performance.now() - t, ...(diagnostics ? { diagnostics } : {}) });
    if (o.checkpoint && ((step + 1) % o.checkpoint.every === 0 || step === o.steps - 1)) {
      saveCheckpoint(o.checkpoint.path, o.model, o.optimizer, { step: step + 1 }, o.checkpoint.architecture);
    }
  }
  o.model.eval();
  clearPool(); // the steps' arrays, kept for the next step
  return { steps: o.steps - start, firstLoss, lastLoss, seconds: (performance.now() - t0) / 1000 };
}
