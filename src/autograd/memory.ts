/**
 * Tensor lifetimes. JavaScript frees typed arrays by itself, but a training loop must not keep a growing
 * graph of intermediates alive, and GPU textures are not garbage collected at all. So every tensor is
 * counted from construction to dispose(), and tidy() disposes what a block created but did not return.
 */
import type { Tensor } from '../tensor/tensor.js';

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
}

export function onDispose(t: Tensor): void {
  liveCount--;
  liveBytes -= bytesOf(t);
  for (const s of scopes) s.delete(t);
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
