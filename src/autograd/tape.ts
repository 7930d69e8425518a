/**
 * Reverse-mode autograd. Each differentiable op records a GradNode on its output: the inputs and a
 * closure mapping dL/dout to dL/dinput (written beside the op's forward). backward() walks the graph
 * in reverse topological order, sums gradients that meet at a tensor, and accumulates into leaves' .grad.
 */
import { binaryValues } from '../backends/cpu/wasm_planes.js';
import { FacenetError } from '../errors.js';
import { allocUnfilled, dtypeOf, Tensor, type TypedArray } from '../tensor/tensor.js';
import { noteGradStorage, releaseArray } from './memory.js';

export interface GradNode {
  readonly op: string;
  inputs: readonly Tensor[];
  /**
   * Given dL/dout, returns dL/dinput for each input, or null where `needs[i]` is false
   * (the closure may skip that work). A returned array may alias dy (add returns dy for both inputs): the
   * tape writes into it only if it was handed over (see handOver) and is one tensor's gradient alone.
   * `into[i]`, when given, holds input i's gradient so far, in an array the tape may write: the op may add
   * its gradient into it and return that array (a convolution's dx: col2im adds onto it, a 1x1's GEMM
   * accumulates), which saves the pass that would sum the two.
   */
  backward: (dy: TypedArray, needs: readonly boolean[], into?: readonly (TypedArray | undefined)[]) => readonly (TypedArray | null)[];
  /** Arrays only the backward reads (kept from the forward): free to reuse once the node is freed. */
  saved?: readonly TypedArray[];
  /**
   * The backward adds into `into` whenever offered (a convolution's dx). The tape then offers a copy of a
   * gradient so far that it may not write (not handed over, or add's dy while both its inputs still hold
   * it): a native copy costs less than the pass that would otherwise sum the two.
   */
  addsInto?: boolean;
}

let gradEnabled = true;

/** Gradient arrays their op handed over (see handOver): the tape may add into them or keep them as a leaf's .grad. */
const handedOver = new WeakSet<TypedArray>();

/**
 * Marks a gradient array an op's backward made for the tape alone (new, aliasing nothing, kept nowhere):
 * a sum of gradients may then go into it, and a parameter may keep it as its .grad without a copy.
 */
export function handOver<T extends TypedArray | null>(a: T): T {
  if (a) handedOver.add(a);
  return a;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording any graph (inference): no closures, no saved buffers. */
export function noGrad<T>(fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = before;
  }
}

/** True when an op on these inputs must record its backward. Ops check it before saving buffers. */
export function needsGrad(...inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad === true);
}

/** Attaches a GradNode to `out` when any input requires grad; returns `out`. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward'], options: Pick<GradNode, 'saved' | 'addsInto'> = {}): Tensor {
  if (needsGrad(...inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, ...options };
  }
  return out;
}

/** Whether t has a graph backward() could still run through (freed by a backward without retainGraph). */
export function hasLiveGraph(t: Tensor): boolean {
  return t.node !== null && t.node.backward !== freedBackward;
}

function freedBackward(): never {
  throw new FacenetError('GRAPH_FREED', 'backward through a graph that was already freed; pass { retainGraph: true } to the first backward()');
}

/** Tensors reachable from root through nodes, ordered so that every tensor comes before its inputs. */
function reverseTopologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: { t: Tensor; expanded: boolean }[] = [{ t: root, expanded: false }];
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (top.expanded) {
      order.push(top.t);
      continue;
    }
    if (visited.has(top.t)) continue;
    visited.add(top.t);
    stack.push({ t: top.t, expanded: true });
    for (const input of top.t.node?.inputs ?? []) if (input.requiresGrad && !visited.has(input)) stack.push({ t: input, expanded: false });
  }
  return order.reverse();
}

export function runBackward(root: Tensor, seed: TypedArray, retainGraph: boolean): void {
  const grads = new Map<Tensor, TypedArray>();
  const owned = new WeakSet<TypedArray>(); // arrays the tape allocated, or an op handed over: safe to add into while one tensor's gradient
  const handled = new Set<TypedArray>(); // every gradient array (leaves get copies), and freed nodes' saved arrays: dead once backward is done
  // How many tensors' gradients an array is: add's backward returns one array for both inputs. The tape
  // adds into an owned array only while it is one gradient (a tensor whose backward is running still
  // holds its own until the op is done with it): once the other holder has let go, it may again.
  const holders = new Map<TypedArray, number>();
  const letGo = (a: TypedArray): void => {
    const n = holders.get(a)!;
    if (n > 1) holders.set(a, n - 1);
    else holders.delete(a);
  };
  const hold = (t: Tensor, a: TypedArray): void => {
    const prev = grads.get(t);
    grads.set(t, a);
    holders.set(a, (holders.get(a) ?? 0) + 1);
    if (prev !== undefined) letGo(prev);
  };
  const writable = (a: TypedArray): boolean => owned.has(a) && holders.get(a) === 1;
  const accumulate = (t: Tensor, g: TypedArray): void => {
    if (g.length !== t.size) throw new FacenetError('INTERNAL', `backward of ${t.node?.op ?? 'leaf'}: gradient has ${g.length} elements for a tensor of ${t.size}`);
    handled.add(g);
    const prev = grads.get(t);
    if (prev === undefined) return hold(t, g);
    // prev may be an op's or another tensor's array: the sum goes into a new one (one pass: prev + g).
    const sum = writable(prev) ? prev : allocUnfilled(dtypeOf(prev), prev.length);
    owned.add(sum);
    handled.add(sum);
    if (!binaryValues('add', prev, g, sum)) for (let i = 0; i < sum.length; i++) sum[i] = prev[i]! + g[i]!;
    if (sum !== prev) hold(t, sum);
  };
  accumulate(root, seed.slice());

  for (const t of reverseTopologicalOrder(root)) {
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t); // g stays held (holders) until the op has read it
    const node = t.node;
    if (node === null) {
      if (accumulateLeafGrad(t, g, writable(g))) handled.delete(g);
      letGo(g);
      continue;
    }
    const needs = node.inputs.map((x) => x.requiresGrad);
    // Inputs' gradients so far that the op may add into, of an input it has once: writable ones, or for an
    // op that adds into whatever it is offered, a copy.
    const into = node.inputs.map((x, i) => {
      const prev = needs[i] ? grads.get(x) : undefined;
      if (!prev || node.inputs.indexOf(x) !== node.inputs.lastIndexOf(x)) return undefined;
      if (writable(prev)) return prev;
      if (!node.addsInto) return undefined;
      const copy = allocUnfilled(dtypeOf(prev), prev.length);
      copy.set(prev);
      owned.add(copy);
      handled.add(copy);
      hold(x, copy);
      return copy;
    });
    const inputGrads = node.backward(g, needs, into);
    for (const gi of inputGrads) if (gi && handedOver.delete(gi)) owned.add(gi);
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (needs[i] && gi && gi !== into[i]) accumulate(input, gi); // into[i] returned: the op added its gradient there
    });
    letGo(g);
    if (!retainGraph) {
      node.inputs = [];
      node.backward = freedBackward;
      for (const a of node.saved ?? []) handled.add(a);
      node.saved = undefined;
    }
  }
  for (const a of handled) releaseArray(a); // reused only inside tidyAndRecycle, and only if nothing holds it
}

/**
 * Adds g into leaf.grad, or makes it leaf.grad: g itself when the tape owns it (`own`; true is returned:
 * the leaf keeps it), else a copy (an op's array may be another gradient's too).
 */
function accumulateLeafGrad(leaf: Tensor, g: TypedArray, own: boolean): boolean {
  if (leaf.grad === null) {
    const kept = own && dtypeOf(g) === leaf.dtype ? g : allocUnfilled(leaf.dtype, leaf.size);
    if (kept !== g) kept.set(g);
    noteGradStorage(kept);
    leaf.grad = new Tensor(kept, leaf.shape, { tracked: false });
    return kept === g;
  }
  const acc = leaf.grad.data;
  if (!binaryValues('add', acc, g, acc)) for (let i = 0; i < acc.length; i++) acc[i]! += g[i]!;
  return false;
}
