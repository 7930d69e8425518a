/** A GEMM worker: waits for a job, computes its column slice of the shared product, reports done. */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { columnSlice, CTRL, runSlice } from './threads.js';

const { ctrl, index } = workerData as { ctrl: Int32Array; index: number };
let data: Float32Array = new Float32Array(0);
// Jobs are numbered from 1; a worker that starts late still sees the first job as new.
let seen = 0;

for (;;) {
  Atomics.wait(ctrl, CTRL.SEQ, seen);
  seen = Atomics.load(ctrl, CTRL.SEQ);
  if (Atomics.load(ctrl, CTRL.RESIZE) === 1 || data.length === 0) {
    // Take the newest shared buffer the main thread posted.
    for (let m = receiveMessageOnPort(parentPort!); m; m = receiveMessageOnPort(parentPort!)) data = m.message as Float32Array;
  }
  const M = Atomics.load(ctrl, CTRL.M), N = Atomics.load(ctrl, CTRL.N), K = Atomics.load(ctrl, CTRL.K), T = Atomics.load(ctrl, CTRL.THREADS);
  const [j0, j1] = columnSlice(N, index, T);
  const transA = Atomics.load(ctrl, CTRL.TRANS_A) === 1, transB = Atomics.load(ctrl, CTRL.TRANS_B) === 1;
  runSlice(data, transA, transB, Atomics.load(ctrl, CTRL.ACCUMULATE) === 1, M, N, K, T, j0, j1, Atomics.load(ctrl, CTRL.WASM) === 1 ? 'wasm' : 'js');
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}
