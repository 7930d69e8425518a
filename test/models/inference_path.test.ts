/**
 * Models take a fused path when no gradient is asked for (conv + batchnorm or affine + ReLU in one pass,
 * constants from the current parameters). It must give the differentiable path's values: both run here
 * on the same randomized parameters and input (eval mode): the fused path under noGrad, the graph path
 * with an input that requires a gradient. No data needed.
 */
import { expect } from 'chai';
import { buildModel } from '../../src/models/factory.js';
import { noGrad, Rng, tensor, type Tensor } from '../../src/index.js';
import { randomTensor } from '../helpers.js';

/** Every parameter and buffer random: weights around 0, per-channel scales, variances and the like in [0.5, 1.5]. */
function randomize(model: ReturnType<typeof buildModel>, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, t] of model.stateDict()) {
    const positive = /running_var|scale\.weight|bn\.weight|\.bn\d*\.weight/.test(name);
    const spread = t.rank > 1 ? 1 / Math.sqrt(t.size / t.shape[0]!) : 0.3;
    t.data.set(Float64Array.from({ length: t.size }, () => (positive ? 0.5 + rng.uniform() : spread * rng.normal())));
  }
}

const maxAbs = (a: Tensor, b: Tensor): number => Array.from(a.data).reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
const largest = (a: Tensor): number => Array.from(a.data).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('fused inference forward equals the differentiable forward', () => {
  it('parameters() (which each layer asks for to choose its path) are namedParameters()\'s tensors, in order', () => {
    for (const arch of ['dlib-resnet34', 'nn4.small2', 'inception-resnet-v1'] as const) {
      const model = buildModel(arch, { seed: 5 }), named = model.namedParameters().map(([, t]) => t);
      expect(named.length, arch).to.be.greaterThan(10);
      expect(model.parameters(), arch).to.have.ordered.members(named);
    }
  });
  for (const [arch, size, batch] of [['dlib-resnet34', 150, 2], ['nn4.small2', 96, 2], ['inception-resnet-v1', 160, 1]] as const) {
    it(`${arch}: the same output without a graph as with one (to float32 rounding)`, () => {
      const model = buildModel(arch, { seed: 5 });
      randomize(model, 9);
      model.eval();
      const x = randomTensor([batch, 3, size, size], 11);
      const fused = noGrad(() => model.forward(x) as Tensor);
      const graphInput = tensor(x.data, x.shape, { requiresGrad: true });
      const graph = model.forward(graphInput) as Tensor;
      expect(graph.requiresGrad, 'the second forward built a graph').to.equal(true);
      const err = maxAbs(fused, graph), scale = largest(graph);
      console.log(`      ${arch}: max abs ${err.toExponential(2)} (output max ${scale.toPrecision(3)})`);
      expect(scale).to.be.greaterThan(0);
      expect(err).to.be.at.most(1e-5 * Math.max(1, scale));
    });
  }
  // Conv2d.forwardThen: a convolution and its ReLU, PReLU or leaky ReLU as one op (the activation applied as
  // the output is stored) where no gradient is asked for. The same float32 operations: the same bits.
  for (const [arch, size] of [['tiny-face-detector', 64], ['landmarks68', 112], ['mtcnn-pnet', 30], ['mtcnn-rnet', 24], ['mtcnn-onet', 48]] as const) {
    it(`${arch}: each convolution and its activation in one op give the two ops' values bit for bit`, () => {
      const model = buildModel(arch, { seed: 5 });
      randomize(model, 9);
      model.eval();
      const x = randomTensor([2, 3, size, size], 11);
      const outputs = (y: unknown): Tensor[] => ('data' in (y as Tensor) ? [y as Tensor] : Object.values(y as Record<string, Tensor>));
      const fused = outputs(noGrad(() => model.forward(x)));
      const graph = outputs(model.forward(tensor(x.data, x.shape, { requiresGrad: true })));
      expect(graph[0]!.requiresGrad, 'the second forward built a graph').to.equal(true);
      expect(fused.length).to.equal(graph.length);
      fused.forEach((t, i) => {
        expect(largest(t), `${arch} output ${i}`).to.be.greaterThan(0);
        expect(Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((graph[i]!.data as Float32Array).buffer)), `${arch} output ${i}`).to.equal(true);
      });
    });
  }
});
