/**
 * Tensor lifetimes. JavaScript frees typed arrays by itself, but a training loop must not keep a growing
 * graph of intermediates alive, and GPU textures are not garbage collected at all. So every tensor is
 * counted from construction to dispose(), and tidy() disposes what a block created but did not return.
 */
import type { Tensor, TypedArray } from '../tensor/tensor.js';
import { hasLiveGraph, noGrad } from './tape.js';
import { isShared } from '../backends/cpu/threads.js';

let liveCount = 0;
let liveBytes = 0;
let peakBytes = 0;
const scopes: Set<Tensor>[] = [];

/** Tensors constructed and not yet disposed: tests assert this stays flat across long loops. */
export function liveTensors(): number {
  return liveCount;
}

/**
 * Bytes held by live tensors (host or device; each tensor counted once, whatever shares its values),
 * and the most held since resetPeakBytes(): what a forward pass costs in tensor memory.
 */
export function tensorBytes(): { live: number; peak: number } {
  return { live: liveBytes, peak: peakBytes };
}

export function resetPeakBytes(): void {
  peakBytes = liveBytes;
}

const bytesOf = (t: Tensor): number => t.size * (t.dtype === 'float64' ? 8 : 4);

export function onCreate(t: Tensor, tracked: boolean): void {
  liveCount++;
  liveBytes += bytesOf(t);
  if (liveBytes > peakBytes) peakBytes = liveBytes;
  if (tracked) scopes[scopes.length - 1]?.add(t);
  for (const r of recycling) r.created.push(t);
}

/** `storage`: the host array the tensor held (null for a device tensor or a view that never had one). */
export function onDispose(t: Tensor, storage: TypedArray | null): void {
  liveCount--;
  liveBytes -= bytesOf(t);
  for (const s of scopes) s.delete(t);
  if (storage instanceof Float32Array) for (const r of recycling) r.freed.push(storage);
}

/*
 * Buffer reuse. tidyAndRecycle() runs an inference block (or a training step) and, when it ends, gives the
 * float32 arrays of the tensors that died inside it, and the gradients backward() computed there, to
 * alloc(), which hands them out again (zeroed; allocUnfilled: as they are, for outputs written in full)
 * for the same lengths: a loop embedding one batch after another, or taking one training step after
 * another, then allocates almost nothing per batch once warm (the garbage collector otherwise sweeps every
 * batch's intermediates, and each new array costs the system fresh zeroed pages). An array is reused only
 * if it was allocated inside the block, belonged to a tensor disposed there (or was a gradient), and is
 * held by no tensor still alive nor returned; and only if no graph outlives the block (under noGrad none
 * is built; a training step's graph is freed by backward()), since a graph's backward reads the arrays of
 * the tensors it was built from. The caller's part of the contract: keep no typed array of an intermediate
 * (.data) past the block; copy values out.
 */
interface Recycling { allocated: Set<TypedArray>; created: Tensor[]; freed: Float32Array[] }
const recycling: Recycling[] = [];
const pool = new Map<number, Float32Array[]>();
const pooledInOrder = new Set<Float32Array>(); // the pooled arrays, oldest first
let pooledBytes = 0;
/**
 * At most this many bytes wait in the pool: room for a training step of Inception-ResNet-v1 at batch 16
 * (1.4 GB of arrays). Past it the arrays pooled longest ago are dropped for the garbage collector (those
 * of an earlier workload: another model, batch size or image size). clearPool() empties it.
 */
const POOL_LIMIT = 2 * 2 ** 30;
let poolLimit = POOL_LIMIT;

/** Tests: the pool's byte limit (undefined: the default). */
export function setPoolLimit(bytes?: number): void {
  poolLimit = bytes ?? POOL_LIMIT;
}
const stats = { fresh: 0, freshBytes: 0, reused: 0, reusedBytes: 0 };

/** alloc()'s new arrays, counted, and noted by the enclosing tidyAndRecycle blocks. */
export function noteAllocation(a: TypedArray): void {
  stats.fresh++;
  stats.freshBytes += a.byteLength;
  for (const r of recycling) r.allocated.add(a);
}

/** Whether a tidyAndRecycle block is running (alloc() then makes large arrays shareable with the worker threads). */
export function insideRecycling(): boolean {
  return recycling.length > 0;
}

let poison = false;

/**
 * A pooled float32 array of length n, zeroed (or as it was left, when not `zeroed`: filled with NaN
 * instead while poisonPooledArrays is on), or null. `shared`, when given: whether it must live in a
 * SharedArrayBuffer (see alloc()); arrays pooled the other way (before the thread count changed) are dropped.
 */
export function takePooled(n: number, zeroed = true, shared?: boolean): Float32Array | null {
  const list = pool.get(n);
  let a: Float32Array | undefined;
  while ((a = list?.pop()) !== undefined) {
    pooledInOrder.delete(a);
    pooledBytes -= a.byteLength;
    if (shared === undefined || isShared(a) === shared) break;
  }
  if (!a) return null;
  stats.reused++;
  stats.reusedBytes += a.byteLength;
  for (const r of recycling) r.allocated.add(a);
  return zeroed ? a.fill(0) : poison ? a.fill(NaN) : a;
}

/** Tests: pooled arrays handed out unfilled come filled with NaN, so an output not written in full shows. */
export function poisonPooledArrays(on: boolean): void {
  poison = on;
}

/**
 * Arrays of parameters' gradients (the tape's copies, see tape.ts): held by nothing but their .grad tensor,
 * so reused once it is disposed in a recycling block (zeroGrad() in the next training step), though
 * they were allocated in an earlier one.
 */
const gradStorage = new WeakSet<TypedArray>();

export function noteGradStorage(a: TypedArray): void {
  gradStorage.add(a);
}

/** backward() is done with a gradient array: the enclosing tidyAndRecycle blocks may reuse it once they end. */
export function releaseArray(a: TypedArray): void {
  if (a instanceof Float32Array) for (const r of recycling) r.freed.push(a);
}

/** Arrays alloc() made new and took from the pool since the process started (counts and bytes). */
export function allocationStats(): { fresh: number; freshBytes: number; reused: number; reusedBytes: number; pooledBytes: number } {
  return { ...stats, pooledBytes };
}

/** Empties the buffer pool (its arrays go to the garbage collector). */
export function clearPool(): void {
  pool.clear();
  pooledInOrder.clear();
  pooledBytes = 0;
}

/**
 * tidy(fn) under noGrad, then recycles the float32 arrays of the tensors that died inside (see above).
 * For inference code that copies its results out of tensors' arrays before returning. With `training`, fn
 * runs with gradients on (a training step: forward, backward(), an optimizer update) and its gradients are
 * recycled too; nothing is recycled if a graph outlives the block (backward() not called, or with
 * retainGraph, on a tensor the block keeps or returns).
 */
export function tidyAndRecycle<T>(fn: () => T, options: { training?: boolean } = {}): T {
  const r: Recycling = { allocated: new Set(), created: [], freed: [] };
  recycling.push(r);
  let result: T;
  try {
    result = options.training ? tidy(fn) : noGrad(() => tidy(fn));
  } finally {
    recycling.splice(recycling.indexOf(r), 1);
  }
  const held = new Set<unknown>();
  for (const t of r.created) {
    if (t.isDisposed) continue;
    if (hasLiveGraph(t)) return result;
    if (!t.device) held.add(t.data);
  }
  collectArrays(result, held);
  for (const a of r.freed) {
    if (!(r.allocated.has(a) || gradStorage.has(a)) || held.has(a) || a.byteLength > poolLimit) continue;
    while (pooledBytes + a.byteLength > poolLimit) dropOldestPooled();
    held.add(a); // a tensor and its views free the same array: pool it once
    const list = pool.get(a.length) ?? [];
    list.push(a);
    pool.set(a.length, list);
    pooledInOrder.add(a);
    pooledBytes += a.byteLength;
  }
  return result;
}

function dropOldestPooled(): void {
  const oldest = pooledInOrder.values().next().value!;
  pooledInOrder.delete(oldest);
  const list = pool.get(oldest.length)!;
  list.splice(list.indexOf(oldest), 1);
  pooledBytes -= oldest.byteLength;
}

function collectArrays(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (ArrayBuffer.isView(value)) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collectArrays(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectArrays(v, into, depth + 1);
}

/**
 * Runs fn and disposes every tensor created inside it, except the tensors found in its return value
 * (a tensor, or arrays / plain objects holding tensors), which move to the enclosing scope.
 * Synchronous only: an async function would let tensors escape the scope unseen.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error('tidy(fn): fn must be synchronous; await outside tidy and tidy each step');
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Exempts a tensor from the enclosing tidy() scopes (e.g. a parameter or a running statistic). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
}

function isTensor(v: object): v is Tensor {
  return (v as { isTensor?: unknown }).isTensor === true;
}
