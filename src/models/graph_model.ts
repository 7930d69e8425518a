/**
 * A small interpreter for TF.js graph models (model.json `modelTopology.node` + weights): each TF op maps
 * onto our ops. TF tensors are NHWC; convolutions here are NCHW, so 4-D activations are kept transposed
 * ("nchw" values) through every layout-agnostic op and converted back only where an op needs TF's own
 * layout (Reshape, Squeeze, reductions over other axes). The graph is validated when the model is built:
 * unknown ops are one error listing all of them.
 *
 * Rewrites save passes over the activations (the same values, see fusePRelus and convolve): converters
 * spell PReLU as relu(x) + c * (x - |x|) (five ops), which becomes one prelu; a convolution's fused bias
 * (and ReLU, or the PReLU that alone reads its output) is applied as it is written out, when no gradient is
 * asked for.
 */
import { FacenetError } from '../errors.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { isGradEnabled, noGrad } from '../autograd/tape.js';
import { keep } from '../autograd/memory.js';

export interface GraphNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, unknown>;
}

export class GraphError extends FacenetError {
  constructor(message: string) {
    super('BAD_GRAPH', message);
  }
}

/** A value flowing through the graph: `nchw` marks a logical NHWC tensor stored as NCHW. */
interface Value { t: Tensor; nchw: boolean }

/** Our own node, made by fusePRelus: PReLU of input 0 with the slope derived from the Const of input 1. */
const FUSED_PRELU = '_FacenetPrelu';

export const SUPPORTED_OPS = [
  'Const', 'Placeholder', 'Identity', 'Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative',
  'MatMul', '_FusedMatMul', 'BiasAdd', 'Add', 'AddV2', 'Sub', 'Mul', 'Maximum', 'Minimum', 'RealDiv',
  'Relu', 'Relu6', 'Abs', 'Square', 'Sqrt', 'Rsqrt', 'Neg', 'Sum', 'Mean', 'Pad', 'Reshape', 'Squeeze', 'ConcatV2', 'MaxPool', 'AvgPool',
];

/** The node an input reference names: without a control-dependency '^' or an output index ':k'. */
const nodeName = (ref: string): string => ref.replace(/^\^/, '').replace(/:\d+$/, '');
const toNchw = (v: Value): Tensor => (v.nchw || v.t.rank !== 4 ? v.t : ops.transpose(v.t, [0, 3, 1, 2]));
const toPlain = (v: Value): Tensor => (v.nchw ? ops.transpose(v.t, [0, 2, 3, 1]) : v.t);
const ints = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : []);

export class GraphModel extends Module {
  private readonly consts = new Map<string, Tensor>();
  /** Conv filters converted to OIHW once, by node name. */
  private readonly filters = new Map<string, Tensor>();
  /** Fused PReLUs' slopes, derived once from their Const, by node name (not weights: not in the state dict). */
  private readonly slopes = new Map<string, Tensor>();
  /** Ones by length: conv2dScaleShift's scale for a bias alone. */
  private readonly ones = new Map<number, Float32Array>();
  private readonly order: GraphNode[];
  /** Fused PReLU nodes by the name of the convolution whose output only they read (see preluAfterConv). */
  private readonly preluOf: Map<string, GraphNode>;
  /** The fused PReLUs this forward pass applied inside their convolution: they pass its output on. */
  private readonly appliedInConv = new Set<string>();

  constructor(readonly nodes: GraphNode[], weights: Map<string, { shape: readonly number[]; data: ArrayLike<number> }>, readonly inputName: string, readonly outputName: string) {
    super();
    const unknown = [...new Set(nodes.map((n) => n.op).filter((op) => !SUPPORTED_OPS.includes(op)))];
    if (unknown.length > 0) throw new GraphError(`unsupported TF ops: ${unknown.join(', ')} (supported: ${SUPPORTED_OPS.join(', ')})`);
    for (const n of nodes.filter((n) => n.op === 'Const')) {
      const w = weights.get(n.name);
      if (!w) throw new GraphError(`no weights for Const node ${n.name}`);
      this.consts.set(n.name, this.buffer(n.name, tensor(w.data, w.shape)));
    }
    this.order = topoOrder(fusePRelus(nodes, (name) => this.consts.has(name)), outputName);
    this.preluOf = preluAfterConv(this.order);
    if (!nodes.some((n) => n.name === inputName && n.op === 'Placeholder')) throw new GraphError(`input node ${inputName} is not a Placeholder`);
  }

  /** x: NCHW input (the logical NHWC input of the graph, transposed). */
  forward(x: Tensor): Tensor {
    const values = new Map<string, Value>();
    const get = (ref: string): Value => {
      const name = nodeName(ref);
      const v = values.get(name);
      if (!v) throw new GraphError(`node input ${ref} was not computed`);
      return v;
    };
    this.appliedInConv.clear();
    for (const n of this.order) {
      if (n.op === 'Const') values.set(n.name, { t: this.consts.get(n.name)!, nchw: false });
      else if (n.op === 'Placeholder') values.set(n.name, { t: x, nchw: true });
      else values.set(n.name, this.run(n, n.input.filter((i) => !i.startsWith('^')).map(get)));
    }
    return toPlain(get(this.outputName));
  }

  private constValues(v: Value): number[] {
    return Array.from(v.t.data);
  }

  private run(n: GraphNode, inputs: Value[]): Value {
    const [a, b] = inputs;
    switch (n.op) {
      case 'Identity': return a!;
      case 'Conv2D': case '_FusedConv2D': case 'DepthwiseConv2dNative': case 'FusedDepthwiseConv2dNative':
        return { t: this.convolve(n, a!, b!, inputs.slice(2)), nchw: true };
      case FUSED_PRELU: return this.appliedInConv.has(n.name) ? a! : this.prelu(n, a!, b!);
      case 'MatMul': case '_FusedMatMul': {
        let lhs = toPlain(a!), rhs = toPlain(b!);
        if (n.attr.transpose_a) lhs = ops.transpose(lhs, [1, 0]);
        if (n.attr.transpose_b) rhs = ops.transpose(rhs, [1, 0]);
        return { t: this.fused(n, ops.matmul(lhs, rhs), inputs.slice(2), false), nchw: false };
      }
      case 'BiasAdd': return this.binary(ops.add, a!, b!);
      case 'Add': case 'AddV2': return this.binary(ops.add, a!, b!);
      case 'Sub': return this.binary(ops.sub, a!, b!);
      case 'Mul': return this.binary(ops.mul, a!, b!);
      case 'RealDiv': return this.binary(ops.div, a!, b!);
      case 'Maximum': return this.binary(ops.maximum, a!, b!);
      case 'Minimum': return this.binary(ops.minimum, a!, b!);
      case 'Relu': return { t: ops.relu(a!.t), nchw: a!.nchw };
      case 'Relu6': return { t: ops.relu6(a!.t), nchw: a!.nchw };
      case 'Abs': return { t: ops.abs(a!.t), nchw: a!.nchw };
      case 'Neg': return { t: ops.neg(a!.t), nchw: a!.nchw };
      case 'Square': return { t: ops.square(a!.t), nchw: a!.nchw };
      case 'Sqrt': return { t: ops.sqrt(a!.t), nchw: a!.nchw };
      case 'Rsqrt': return { t: ops.pow(a!.t, -0.5), nchw: a!.nchw };
      case 'Sum': case 'Mean': return this.reduce(n, a!, this.constValues(b!));
      case 'Pad': {
        const p = this.constValues(b!);
        if (a!.t.rank !== 4 || p[0] || p[1] || p[6] || p[7]) throw new GraphError(`${n.name}: Pad supports the spatial dims of 4-D tensors only`);
        return { t: ops.pad2d(toNchw(a!), [p[2]!, p[3]!, p[4]!, p[5]!]), nchw: true };
      }
      case 'Reshape': return { t: ops.reshape(toPlain(a!), this.constValues(b!)), nchw: false };
      case 'Squeeze': {
        const t = toPlain(a!);
        const dims = ints(n.attr.squeeze_dims).map((d) => (d < 0 ? d + t.rank : d));
        return { t: ops.reshape(t, t.shape.filter((s, i) => !(dims.length ? dims.includes(i) : s === 1))), nchw: false };
      }
      case 'ConcatV2': {
        const parts = inputs.slice(0, -1), axis = this.constValues(inputs[inputs.length - 1]!)[0]!;
        const rank = parts[0]!.t.rank;
        if (rank === 4 && (axis === 3 || axis === -1)) return { t: ops.concat(parts.map(toNchw), 1), nchw: true };
        return { t: ops.concat(parts.map(toPlain), axis), nchw: false };
      }
      case 'MaxPool': case 'AvgPool': {
        const k = ints(n.attr.ksize), s = ints(n.attr.strides);
        const options = { kernel: [k[1]!, k[2]!] as [number, number], stride: [s[1]!, s[2]!] as [number, number], padding: n.attr.padding === 'SAME' ? ('same' as const) : ('valid' as const) };
        const x = toNchw(a!);
        return { t: n.op === 'MaxPool' ? ops.maxPool2d(x, options) : ops.avgPool2d(x, { ...options, countIncludePad: false }), nchw: true };
      }
      default: throw new GraphError(`${n.name}: op ${n.op} is not implemented`);
    }
  }

  /**
   * A convolution and its fused ops. Bias (+ ReLU) alone is applied as the output is written
   * (conv2dScaleShift, scale 1: the same sums) unless a gradient may be asked for.
   */
  private convolve(n: GraphNode, x: Value, filter: Value, args: Value[]): Tensor {
    const { w, options } = this.convParts(n, filter);
    const list = (n.attr.fused_ops as string[] | undefined) ?? [];
    const biasOnly = list[0] === 'BiasAdd' && (list.length === 1 || (list.length === 2 && list[1] === 'Relu'));
    if (biasOnly && !(isGradEnabled() && x.t.requiresGrad) && args[0]!.t.size === w.shape[0]) {
      const bias = args[0]!.t.data;
      let ones = this.ones.get(bias.length);
      if (!ones) this.ones.set(bias.length, (ones = new Float32Array(bias.length).fill(1)));
      // A PReLU reading only this output: applied as it is written (its slopes), or after a ReLU nothing at
      // all (a PReLU passes values >= 0 and NaN as they are, as the graph's relu(x) + c * (x - |x|) does).
      const relu = list.length === 2, prelu = this.preluOf.get(n.name);
      const slope = prelu && !relu ? this.preluSlope(prelu, this.consts.get(nodeName(prelu.input[1]!))!, bias.length) : null;
      if (prelu && (relu || slope)) this.appliedInConv.add(prelu.name);
      return ops.conv2dScaleShift(toNchw(x), w, ones, bias, slope ? (slope.data as Float32Array) : relu, options);
    }
    return this.fused(n, ops.conv2d(toNchw(x), w, null, options), args);
  }

  private convParts(n: GraphNode, filter: Value): { w: Tensor; options: ops.Conv2dOptions } {
    const depthwise = n.op.includes('Depthwise');
    const f = filter.t;
    const [KH, KW, IN, OUT] = f.shape as [number, number, number, number];
    // HWIO -> OIHW, or depthwise [KH, KW, C, M] -> [C*M, 1, KH, KW]; converted once (filters are constants).
    let w = this.filters.get(n.name);
    if (!w) {
      w = noGrad(() => (depthwise ? ops.reshape(ops.transpose(f, [2, 3, 0, 1]), [IN * OUT, 1, KH, KW]) : ops.transpose(f, [3, 2, 0, 1])));
      this.filters.set(n.name, keep(w));
    }
    const s = ints(n.attr.strides), d = ints(n.attr.dilations);
    const pad = n.attr.padding === 'SAME' ? 'same' : n.attr.padding === 'VALID' ? 'valid' : (() => {
      const e = ints(n.attr.explicit_paddings);
      return [e[2]!, e[3]!, e[4]!, e[5]!] as [number, number, number, number];
    })();
    return { w, options: { stride: [s[1] ?? 1, s[2] ?? 1], dilation: [d[1] ?? 1, d[2] ?? 1], padding: pad, groups: depthwise ? IN : 1 } };
  }

  /**
   * A fused PReLU node: y = keep * x + c * (x - |x|) with keep 0 (relu(x) + ...) or 1 (x + ...), that is
   * x for x > 0 and slope * x below, slope = keep + 2c (exact for keep 0: doubling is exact). Per-channel
   * (or scalar) c over NCHW values: one prelu; otherwise the five ops as written.
   */
  private prelu(n: GraphNode, x: Value, c: Value): Value {
    const keepX = n.attr.keep_x === true;
    const slope = x.nchw && x.t.rank === 4 ? this.preluSlope(n, c.t, x.t.shape[1]!) : null;
    if (slope) return { t: ops.prelu(x.t, slope), nchw: true };
    const leak = this.binary(ops.mul, this.binary(ops.sub, x, { t: ops.abs(x.t), nchw: x.nchw }), c);
    return this.binary(ops.add, keepX ? x : { t: ops.relu(x.t), nchw: x.nchw }, leak);
  }

  /**
   * A fused PReLU's per-channel slope over C channels, keep + 2c (made once), or null where c is neither
   * one value nor C of them.
   */
  private preluSlope(n: GraphNode, c: Tensor, C: number): Tensor | null {
    if (c.size !== 1 && c.size !== C) return null;
    let slope = this.slopes.get(n.name);
    if (!slope) {
      const keepX = n.attr.keep_x === true, cv = c.data;
      slope = keep(tensor(Float32Array.from({ length: C }, (_, i) => (keepX ? 1 : 0) + 2 * cv[c.size === 1 ? 0 : i]!), [C]));
      this.slopes.set(n.name, slope);
    }
    return slope;
  }

  /** The fused_ops of _Fused* nodes: BiasAdd, Relu, Relu6, Prelu, LeakyRelu, in order. */
  private fused(n: GraphNode, y: Tensor, args: Value[], nchw = true): Tensor {
    const list = (n.attr.fused_ops as string[] | undefined) ?? [];
    let out = y, arg = 0;
    const channel = (v: Value): Tensor => (nchw ? ops.reshape(v.t, [1, v.t.size, 1, 1]) : ops.reshape(v.t, [1, v.t.size]));
    for (const op of list) {
      if (op === 'BiasAdd') out = ops.add(out, channel(args[arg++]!));
      else if (op === 'Relu') out = ops.relu(out);
      else if (op === 'Relu6') out = ops.relu6(out);
      else if (op === 'Prelu') out = ops.prelu(out, ops.reshape(args[arg++]!.t, [args[arg - 1]!.t.size]));
      else if (op === 'LeakyRelu') out = ops.leakyRelu(out, Number(n.attr.leakyrelu_alpha ?? 0.2));
      else throw new GraphError(`${n.name}: fused op ${op} is not supported`);
    }
    return out;
  }

  /** TF broadcasting, keeping NCHW where possible: per-channel and scalar constants reshape to [1, C, 1, 1]. */
  private binary(f: (a: Tensor, b: Tensor) => Tensor, a: Value, b: Value): Value {
    if (a.nchw || b.nchw) {
      const big = a.nchw ? a : b, small = a.nchw ? b : a;
      let s: Tensor | null = null;
      if (small.nchw) s = small.t;
      else if (small.t.size === 1) s = ops.reshape(small.t, [1, 1, 1, 1]);
      else if (small.t.size === big.t.shape[1] && small.t.shape[small.t.rank - 1] === small.t.size) s = ops.reshape(small.t, [1, small.t.size, 1, 1]);
      if (s) return { t: a.nchw ? f(big.t, s) : f(s, big.t), nchw: true };
    }
    const x = toPlain(a), y = toPlain(b);
    const rank = Math.max(x.rank, y.rank);
    const lift = (t: Tensor): Tensor => (t.rank === rank ? t : ops.reshape(t, [...new Array<number>(rank - t.rank).fill(1), ...t.shape]));
    return { t: f(lift(x), lift(y)), nchw: false };
  }

  private reduce(n: GraphNode, a: Value, axesRaw: number[]): Value {
    const keepDims = Boolean(n.attr.keep_dims);
    const op = n.op === 'Sum' ? ops.sum : ops.mean;
    const rank = a.t.rank;
    const axes = axesRaw.map((x) => (x < 0 ? x + rank : x)).sort();
    if (a.nchw && axes.join() === '1,2') return { t: op(a.t, { axes: [2, 3], keepDims }), nchw: keepDims };
    return { t: op(toPlain(a), { axes, keepDims }), nchw: false };
  }
}

/**
 * Rewrites relu(x) + c * (x - |x|) and x + c * (x - |x|), c a Const, as one FUSED_PRELU node named like
 * the Add it replaces (so its consumers need no change), when the Relu, Abs, Sub and Mul feed nothing else.
 */
export function fusePRelus(nodes: GraphNode[], isConst: (name: string) => boolean): GraphNode[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const consumers = new Map<string, number>();
  for (const n of nodes) for (const ref of n.input) consumers.set(nodeName(ref), (consumers.get(nodeName(ref)) ?? 0) + 1);
  const only = (n: GraphNode | undefined, op: string): n is GraphNode => n?.op === op && consumers.get(n.name) === 1;
  const rewritten = new Map<string, GraphNode>();
  for (const add of nodes) {
    if ((add.op !== 'Add' && add.op !== 'AddV2') || add.input.length !== 2) continue;
    for (const [i, j] of [[0, 1], [1, 0]] as const) {
      const mul = byName.get(nodeName(add.input[i]!));
      if (!only(mul, 'Mul') || mul.input.length !== 2) continue;
      const [m0, m1] = mul.input.map(nodeName) as [string, string];
      const [subName, c] = isConst(m1) ? [m0, m1] : isConst(m0) ? [m1, m0] : [null, null];
      const sub = subName === null ? undefined : byName.get(subName);
      if (!only(sub, 'Sub') || sub.input.length !== 2) continue;
      const x = nodeName(sub.input[0]!), abs = byName.get(nodeName(sub.input[1]!));
      if (!only(abs, 'Abs') || nodeName(abs.input[0]!) !== x) continue;
      const other = nodeName(add.input[j]!), relu = byName.get(other);
      const keepX = other === x;
      if (!keepX && !(only(relu, 'Relu') && nodeName(relu.input[0]!) === x)) continue;
      rewritten.set(add.name, { name: add.name, op: FUSED_PRELU, input: [x, c!], attr: { keep_x: keepX } });
      break;
    }
  }
  return nodes.map((n) => rewritten.get(n.name) ?? n);
}

/**
 * The fused PReLUs (of a Const slope) that alone read a convolution's output, by the convolution's name,
 * among the nodes that are run (the graph's output is read by none of them): such a convolution applies
 * the PReLU as it writes its output, or drops it after its own ReLU (convolve).
 */
function preluAfterConv(order: GraphNode[]): Map<string, GraphNode> {
  const readers = new Map<string, GraphNode[]>();
  for (const n of order) {
    for (const ref of n.input) {
      const list = readers.get(nodeName(ref));
      if (list) list.push(n);
      else readers.set(nodeName(ref), [n]);
    }
  }
  const byName = new Map(order.map((n) => [n.name, n]));
  const fused = new Map<string, GraphNode>();
  for (const [name, [reader, ...others]] of readers) {
    const conv = byName.get(name);
    if (!conv || !/Conv2D|Conv2dNative/.test(conv.op) || others.length > 0 || reader!.op !== FUSED_PRELU) continue;
    if (nodeName(reader!.input[0]!) === name && byName.get(nodeName(reader!.input[1]!))?.op === 'Const') fused.set(name, reader!);
  }
  return fused;
}

/** Nodes needed for `output`, inputs first. */
function topoOrder(nodes: GraphNode[], output: string): GraphNode[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  if (!byName.has(output)) throw new GraphError(`output node ${output} is not in the graph`);
  const order: GraphNode[] = [];
  const state = new Map<string, 1 | 2>();
  const stack: [string, boolean][] = [[output, false]];
  while (stack.length > 0) {
    const [name, done] = stack.pop()!;
    if (done) { state.set(name, 2); order.push(byName.get(name)!); continue; }
    if (state.get(name) === 2) continue;
    if (state.get(name) === 1) throw new GraphError(`cycle through node ${name}`);
    const node = byName.get(name);
    if (!node) throw new GraphError(`node ${name} is referenced but not defined`);
    state.set(name, 1);
    stack.push([name, true]);
    for (const ref of node.input) {
      const dep = nodeName(ref);
      if (state.get(dep) !== 2) stack.push([dep, false]);
    }
  }
  return order;
}
