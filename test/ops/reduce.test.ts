import { expect } from 'chai';
import { ArgumentError, gradcheck, logSoftmax, max, mean, softmax, sum, tensor } from '../../src/index.js';
import { refSoftmaxRows, unravel } from '../reference.js';
import { expectClose, randomTensor, shapeOf } from '../helpers.js';

describe('reductions', () => {
  const x = randomTensor([2, 3, 4], 1, 'float64');
  /** Reference: group elements by their index with the reduced axes dropped. */
  function refReduce(axes: number[], f: (vals: number[]) => number): number[] {
    const groups = new Map<string, number[]>();
    for (let i = 0; i < x.size; i++) {
      const key = unravel(i, [2, 3, 4]).filter((_, d) => !axes.includes(d)).join(',');
      groups.set(key, [...(groups.get(key) ?? []), x.data[i]!]);
    }
    return [...groups.values()].map(f);
  }
  const total = (v: number[]): number => v.reduce((a, b) => a + b, 0);
  for (const axes of [[0], [1], [2], [0, 2], [0, 1, 2]]) {
    it(`sum / mean / max over axes [${axes}]`, () => {
      expectClose(sum(x, { axes }).data, refReduce(axes, total), 1e-14, 1e-14);
      expectClose(mean(x, { axes }).data, refReduce(axes, (v) => total(v) / v.length), 1e-14, 1e-14);
      expectClose(max(x, { axes }).data, refReduce(axes, (v) => Math.max(...v)), 0, 0);
      for (const op of [sum, mean, max]) expect(gradcheck((xi) => op(xi!, { axes }), [x]).maxRelError).to.be.at.most(1e-6);
    });
  }
  it('keepDims keeps reduced axes as size 1; the default reduces everything to a scalar', () => {
    expect(shapeOf(sum(x, { axes: [1], keepDims: true }))).to.deep.equal([2, 1, 4]);
    expect(shapeOf(sum(x))).to.deep.equal([]);
    expect(sum(x).item()).to.be.closeTo(total(Array.from(x.data)), 1e-12);
    expect(() => sum(x, { axes: 3 })).to.throw(ArgumentError, /axis 3 is out of range/);
  });
});

describe('softmax and logSoftmax', () => {
  it('match the reference, sum to one, and survive large logits', () => {
    const x = tensor([1000, 1001, 1002, -5, 0, 5], [2, 3], { dtype: 'float64' });
    const y = softmax(x);
    expectClose(y.data, refSoftmaxRows([0, 1, 2, -5, 0, 5], 2, 3), 1e-15, 1e-12);
    expectClose(logSoftmax(x).data, Array.from(y.data, Math.log), 1e-12, 1e-12);
  });
  it('gradcheck along the last axis and along axis 1 of a 3-D tensor', () => {
    const a = randomTensor([3, 5], 2, 'float64'), b = randomTensor([2, 4, 3], 3, 'float64');
    expect(gradcheck((t) => softmax(t!), [a]).maxRelError).to.be.at.most(1e-6);
    expect(gradcheck((t) => logSoftmax(t!), [a]).maxRelError).to.be.at.most(1e-6);
    expect(gradcheck((t) => softmax(t!, 1), [b]).maxRelError).to.be.at.most(1e-6);
    expect(gradcheck((t) => logSoftmax(t!, 1), [b]).maxRelError).to.be.at.most(1e-6);
  });
});
