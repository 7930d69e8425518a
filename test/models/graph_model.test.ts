/**
 * The TF.js graph interpreter's rewrites against the ops written out by hand: PReLU spelled as five ops
 * (relu(x) + c * (x - |x|), and x + c * (x - |x|)) runs as one prelu, a convolution's fused bias (+ ReLU)
 * is applied as its output is written, and so is a PReLU that alone reads it (after a ReLU, dropped); a
 * pattern whose parts feed something else is left alone.
 */
import { expect } from 'chai';
import { GraphModel, fusePRelus, type GraphNode } from '../../src/models/graph_model.js';
import { abs, add, conv2d, mul, noGrad, relu, sub, tensor, transpose, type Tensor } from '../../src/index.js';
import { expectClose, randomTensor } from '../helpers.js';

const node = (name: string, op: string, input: string[] = [], attr: Record<string, unknown> = {}): GraphNode => ({ name, op, input, attr });
const conv = (name: string, input: string[], fused: string[]): GraphNode =>
  node(name, '_FusedConv2D', input, { strides: [1, 1, 1, 1], dilations: [1, 1, 1, 1], padding: 'SAME', fused_ops: fused });

/** PReLU as TF.js converters spell it, on `x`: `keep` x itself or relu(x); `prefix` names the five nodes. */
function spelledPRelu(prefix: string, x: string, c: string, keepX: boolean, constFirst = false): GraphNode[] {
  return [
    ...(keepX ? [] : [node(`${prefix}/relu`, 'Relu', [x])]),
    node(`${prefix}/abs`, 'Abs', [x]),
    node(`${prefix}/sub`, 'Sub', [x, `${prefix}/abs`]),
    node(`${prefix}/mul`, 'Mul', constFirst ? [c, `${prefix}/sub`] : [`${prefix}/sub`, c]),
    node(prefix, constFirst ? 'AddV2' : 'Add', constFirst ? [`${prefix}/mul`, keepX ? x : `${prefix}/relu`] : [keepX ? x : `${prefix}/relu`, `${prefix}/mul:0`]),
  ];
}

describe('TF.js graph interpreter: fused PReLU and conv bias', () => {
  const C = 4;
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, t: Tensor): void => void weights.set(name, { shape: [...t.shape], data: t.data as Float32Array });
  put('w1', randomTensor([3, 3, 3, C], 1)); put('b1', randomTensor([C], 2));
  put('w2', randomTensor([1, 1, C, C], 3)); put('b2', randomTensor([C], 4));
  put('c1', randomTensor([C], 5)); put('c2', randomTensor([C], 6)); put('c3', tensor([0.3], [1]));
  put('w3', randomTensor([3, 3, C, C], 8)); put('b3', randomTensor([C], 9)); put('c4', randomTensor([C], 10));
  put('w4', randomTensor([1, 1, C, C], 11)); put('b4', randomTensor([C], 12)); put('c5', randomTensor([C], 13));
  const nodes: GraphNode[] = [
    node('x', 'Placeholder'), ...['w1', 'b1', 'w2', 'b2', 'c1', 'c2', 'c3', 'w3', 'b3', 'c4', 'w4', 'b4', 'c5'].map((n) => node(n, 'Const')),
    conv('conv1', ['x', 'w1', 'b1'], ['BiasAdd', 'Relu']),
    conv('conv2', ['conv1', 'w2', 'b2'], ['BiasAdd']),
    ...spelledPRelu('pa', 'conv2', 'c1', false), // the only reader of conv2: applied as conv2 is written
    ...spelledPRelu('pb', 'pa', 'c2', true, true),
    ...spelledPRelu('pc', 'pb', 'c3', true),
    node('sum', 'Add', ['pc', 'pc/abs']), // pc's Abs feeds this too: pc must stay as written
    conv('conv3', ['pb', 'w3', 'b3'], ['BiasAdd', 'Relu']),
    ...spelledPRelu('pd', 'conv3', 'c4', false), // after conv3's ReLU: passes its values on
    conv('conv4', ['pd', 'w4', 'b4'], ['BiasAdd']),
    ...spelledPRelu('pe', 'conv4', 'c5', true), // conv4 is read by the last Add too: applied on its own
    node('sum2', 'Add', ['pe', 'conv4']),
    node('out', 'Add', ['sum', 'sum2']),
  ];
  const x = randomTensor([2, 3, 9, 7], 7);

  /** The graph evaluated op by op, as written (NCHW; per-channel constants as [1, C, 1, 1]). */
  function byHand(input: Tensor): Tensor {
    const w = (name: string): Tensor => transpose(tensor(weights.get(name)!.data, weights.get(name)!.shape), [3, 2, 0, 1]);
    const ch = (name: string): Tensor => tensor(weights.get(name)!.data, weights.get(name)!.data.length === 1 ? [1, 1, 1, 1] : [1, C, 1, 1]);
    const y1 = relu(add(conv2d(input, w('w1'), null, { padding: 'same' }), ch('b1')));
    const y2 = add(conv2d(y1, w('w2'), null, { padding: 'same' }), ch('b2'));
    const pa = add(relu(y2), mul(sub(y2, abs(y2)), ch('c1')));
    const pb = add(mul(ch('c2'), sub(pa, abs(pa))), pa);
    const pcAbs = abs(pb);
    const pc = add(pb, mul(sub(pb, pcAbs), ch('c3')));
    const y3 = relu(add(conv2d(pb, w('w3'), null, { padding: 'same' }), ch('b3')));
    const pd = add(relu(y3), mul(sub(y3, abs(y3)), ch('c4')));
    const y4 = add(conv2d(pd, w('w4'), null, { padding: 'same' }), ch('b4'));
    const pe = add(y4, mul(sub(y4, abs(y4)), ch('c5')));
    return transpose(add(add(pc, pcAbs), add(pe, y4)), [0, 2, 3, 1]);
  }

  it('rewrites the two spellings into one node each (named like the Add), and not one whose Abs feeds another node', () => {
    const rewritten = fusePRelus(nodes, (name) => weights.has(name));
    const of = (name: string): GraphNode => rewritten.find((n) => n.name === name)!;
    expect(of('pa')).to.deep.include({ op: '_FacenetPrelu', input: ['conv2', 'c1'], attr: { keep_x: false } });
    expect(of('pb')).to.deep.include({ op: '_FacenetPrelu', input: ['pa', 'c2'], attr: { keep_x: true } });
    expect(of('pc').op).to.equal('Add');
    expect(rewritten).to.have.length(nodes.length);
  });

  it('applies a PReLU inside the convolution whose output only it reads, and only there', () => {
    const model = new GraphModel(nodes, weights, 'x', 'out');
    const preluOf = (model as unknown as { preluOf: Map<string, GraphNode> }).preluOf;
    expect([...preluOf].map(([conv, prelu]) => [conv, prelu.name])).to.deep.equal([['conv2', 'pa'], ['conv3', 'pd']]);
  });

  it('gives the values of the ops as written (relu(x) + ... exactly; x + ... to float32 rounding)', () => {
    const model = new GraphModel(nodes, weights, 'x', 'out');
    const want = noGrad(() => byHand(x));
    const got = noGrad(() => model.forward(x));
    expect(got.shape).to.deep.equal([2, 9, 7, C]);
    expectClose(got.data, want.data, 1e-5, 1e-5); // float32 roundings through four convolutions
  });

  it('with a gradient asked for, the convolutions keep their differentiable path, with the same values', () => {
    const model = new GraphModel(nodes, weights, 'x', 'out');
    const fused = noGrad(() => model.forward(x)).data;
    const input = tensor(x.data.slice(), [...x.shape], { requiresGrad: true });
    const y = model.forward(input);
    expect(y.requiresGrad).to.equal(true);
    expect(Array.from(y.data)).to.deep.equal(Array.from(fused));
  });
});
