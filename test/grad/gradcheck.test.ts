import { expect } from 'chai';
import { gradcheck, mul, Tensor, tensor } from '../../src/index.js';
import { record } from '../../src/autograd/tape.js';
import { GRADCHECK_OP_NAMES, makeCase } from '../../src/autograd/cases.js';

const SEEDS = [1, 2, 3, 4, 5];

describe('gradcheck of every differentiable op on random shapes (float64, max rel error <= 1e-6)', () => {
  for (const op of GRADCHECK_OP_NAMES) {
    it(op, function () {
      if (op === 'inception') this.timeout(120000);
      for (const seed of SEEDS) {
        const c = makeCase(op, seed)!;
        const report = gradcheck(c.fn, c.inputs, { names: c.names });
        const detail = `${op} seed ${seed} ${c.description}: ${JSON.stringify(report.inputs.map((i) => [i.name, i.relError]))}`;
        expect(report.ok, detail).to.equal(true);
        expect(report.maxRelError, detail).to.be.at.most(1e-6);
      }
    });
  }
  it('covers every op name the issue lists for the CLI', () => {
    for (const name of ['conv2d', 'depthwise', 'dense', 'batchnorm', 'lrn', 'maxpool', 'avgpool', 'l2pool', 'prelu', 'l2normalize']) {
      expect(GRADCHECK_OP_NAMES).to.include(name);
    }
  });
});

describe('gradcheck itself', () => {
  /** x² with a deliberately wrong backward (x instead of 2x). */
  function brokenSquare(x: Tensor): Tensor {
    const xd = x.data;
    const y = new Tensor(xd.map((v) => v * v), x.shape);
    return record(y, 'brokenSquare', [x], (dy) => [dy.map((g, i) => g * xd[i]!)]);
  }
  it('detects a wrong gradient and reports the worst element', () => {
    const report = gradcheck((x) => brokenSquare(x!), [tensor([1, -3, 2], [3], { dtype: 'float64' })], { names: ['x'] });
    expect(report.ok).to.equal(false);
    const [x] = report.inputs;
    expect(x!.name).to.equal('x');
    expect(x!.worstIndex).to.be.oneOf([0, 1, 2]);
    expect(x!.relError).to.be.closeTo(0.5, 1e-6); // analytic x vs numeric 2x
  });
  it('passes a correct gradient and converts float32 inputs to float64 copies (inputs untouched)', () => {
    const input = tensor([0.5, 1.5], [2]);
    const report = gradcheck((x) => mul(x!, x!), [input]);
    expect(report.ok).to.equal(true);
    expect(input.grad).to.equal(null);
    expect(input.toArray()).to.deep.equal([0.5, 1.5]);
  });
  it('fails on a gradient that is NaN', () => {
    const nanGrad = (x: Tensor): Tensor => record(new Tensor(x.data.slice(), x.shape), 'nan', [x], (dy) => [dy.map(() => NaN)]);
    expect(gradcheck((x) => nanGrad(x!), [tensor([1], [1], { dtype: 'float64' })]).ok).to.equal(false);
  });
});
