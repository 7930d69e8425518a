/** A worker: waits for a job (a GEMM, or a pass), computes its slice of it, reports done. */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { claimSlice, CTRL, PASS_JOB, receive, runPassSlice, runSlice, spinWhile, type WorkerMessage } from './threads.js';
import { colsFromWords } from './conv.js';
import './wasm_planes.js'; // the modules that register passes (threads.ts: registerPass)
import './wasm_pool.js';
import './wasm_lrn.js';
import './wasm_depthwise.js';

const { ctrl, operands, index, errors } = workerData as { ctrl: Int32Array; operands: Int32Array; index: number; errors: MessagePort };
let data: Float32Array = new Float32Array(0);
// Jobs are numbered from 1; a worker that starts late still sees the first job as new.
let seen = 0;

for (;;) {
  spinWhile(() => Atomics.load(ctrl, CTRL.SEQ) === seen); // see SPIN_MS
  Atomics.wait(ctrl, CTRL.SEQ, seen);
  seen = Atomics.load(ctrl, CTRL.SEQ);
  // Take in what the main thread posted (it posts before a job that needs it): a new shared buffer, tensors' buffers.
  for (let m = receiveMessageOnPort(parentPort!); m; m = receiveMessageOnPort(parentPort!)) data = receive(m.message as WorkerMessage) ?? data;
  // The main thread computes a slice itself when no worker has claimed it by the time its own is done.
  if (!claimSlice(ctrl, index, seen)) continue;
  try {
    if (ctrl[CTRL.KIND] === PASS_JOB) runPassSlice(data, operands, ctrl, index);
    else runSlice(data, operands, ctrl, index, colsFromWords);
  } catch (e) { // reported to the caller, which throws it (it cannot take events while it waits)
    errors.postMessage(e instanceof Error ? (e.stack ?? e.message) : String(e));
    Atomics.store(ctrl, CTRL.FAILED, 1);
  }
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}
