/** A GEMM worker: waits for a job, computes its slice (columns or rows) of the shared product, reports done. */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { claimSlice, CTRL, runSlice } from './threads.js';
import { colsFromWords } from './conv.js';

const { ctrl, operands, index } = workerData as { ctrl: Int32Array; operands: Int32Array; index: number };
let data: Float32Array = new Float32Array(0);
// Jobs are numbered from 1; a worker that starts late still sees the first job as new.
let seen = 0;

for (;;) {
  Atomics.wait(ctrl, CTRL.SEQ, seen);
  seen = Atomics.load(ctrl, CTRL.SEQ);
  // Take the newest shared buffer the main thread posted (it posts one before a job that needs it).
  for (let m = receiveMessageOnPort(parentPort!); m; m = receiveMessageOnPort(parentPort!)) data = m.message as Float32Array;
  // The main thread computes a slice itself when no worker has claimed it by the time its own is done.
  if (!claimSlice(ctrl, index, seen)) continue;
  runSlice(data, operands, ctrl, index, colsFromWords);
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}
