import { expect } from 'chai';
import { ArgumentError, concat, flatten, gradcheck, pad2d, reshape, ShapeError, slice, tensor, transpose } from '../../src/index.js';
import { ravel, unravel } from '../reference.js';
import { randomTensor, shapeOf } from '../helpers.js';

describe('layout ops', () => {
  it('reshape keeps the row-major order and infers one -1 dimension', () => {
    const x = tensor([0, 1, 2, 3, 4, 5], [2, 3]);
    const y = reshape(x, [3, -1]);
    expect(shapeOf(y)).to.deep.equal([3, 2]);
    expect(y.toArray()).to.deep.equal([0, 1, 2, 3, 4, 5]);
    expect(() => reshape(x, [4, -1])).to.throw(ShapeError, /6 elements/);
    expect(() => reshape(x, [-1, -1])).to.throw(ShapeError);
    expect(gradcheck((xi) => reshape(xi!, [3, 2]), [randomTensor([2, 3], 1, 'float64')]).ok).to.equal(true);
  });
  it('flatten keeps the batch dimension', () => {
    expect(shapeOf(flatten(randomTensor([2, 3, 4, 5], 1)))).to.deep.equal([2, 60]);
  });
  it('pad2d places the input at (top, left) and fills zeros; gradient crops', () => {
    const x = randomTensor([2, 3, 4, 5], 2, 'float64');
    const [t, b, l, r] = [1, 2, 0, 3];
    const y = pad2d(x, [t, b, l, r]);
    expect(shapeOf(y)).to.deep.equal([2, 3, 7, 8]);
    for (let i = 0; i < y.size; i++) {
      const [n, c, h, w] = unravel(i, [2, 3, 7, 8]) as [number, number, number, number];
      const inside = h >= t && h < t + 4 && w >= l && w < l + 5;
      expect(y.data[i]).to.equal(inside ? x.data[ravel([n, c, h - t, w - l], [2, 3, 4, 5])] : 0);
    }
    expect(gradcheck((xi) => pad2d(xi!, [t, b, l, r]), [x]).maxRelError).to.be.at.most(1e-6);
  });
  it('concat along channels (default) and along any axis, and its gradient splits', () => {
    const a = randomTensor([2, 1, 2, 3], 3, 'float64'), b = randomTensor([2, 2, 2, 3], 4, 'float64');
    const y = concat([a, b]);
    expect(shapeOf(y)).to.deep.equal([2, 3, 2, 3]);
    for (let i = 0; i < y.size; i++) {
      const [n, c, h, w] = unravel(i, [2, 3, 2, 3]) as [number, number, number, number];
      expect(y.data[i]).to.equal(c < 1 ? a.data[ravel([n, c, h, w], [2, 1, 2, 3])] : b.data[ravel([n, c - 1, h, w], [2, 2, 2, 3])]);
    }
    for (const axis of [0, 2, 3, -1]) {
      const shapes = [[2, 3, 2, 3], [2, 3, 2, 3]];
      const parts = shapes.map((s, i) => randomTensor(s, 10 + i, 'float64'));
      const r = gradcheck((p, q) => concat([p!, q!], axis), parts);
      expect(r.maxRelError, `axis ${axis}`).to.be.at.most(1e-6);
    }
    expect(gradcheck((p, q) => concat([p!, q!]), [a, b]).maxRelError).to.be.at.most(1e-6);
  });
  it('concat rejects mismatched shapes and empty lists', () => {
    expect(() => concat([randomTensor([2, 1, 2, 3], 1), randomTensor([2, 1, 3, 3], 2)])).to.throw(ShapeError, /except along axis 1/);
    expect(() => concat([])).to.throw(ArgumentError);
  });
  it('slice takes the block [begin, begin+size) and -1 means to the end', () => {
    const x = randomTensor([3, 4, 5], 5, 'float64');
    const y = slice(x, [1, 0, 2], [2, -1, 2]);
    expect(shapeOf(y)).to.deep.equal([2, 4, 2]);
    for (let i = 0; i < y.size; i++) {
      const [a, b, c] = unravel(i, [2, 4, 2]) as [number, number, number];
      expect(y.data[i]).to.equal(x.data[ravel([a + 1, b, c + 2], [3, 4, 5])]);
    }
    expect(gradcheck((xi) => slice(xi!, [1, 0, 2], [2, -1, 2]), [x]).maxRelError).to.be.at.most(1e-6);
    expect(() => slice(x, [2, 0, 0], [2, 1, 1])).to.throw(ShapeError, /dimension 0: begin 2, size 2/);
  });
});

describe('transpose', () => {
  it('permutes dimensions (NCHW -> NHWC and back) and its gradient permutes back', () => {
    const x = randomTensor([2, 3, 4, 5], 9, 'float64');
    const y = transpose(x, [0, 2, 3, 1]);
    expect(shapeOf(y)).to.deep.equal([2, 4, 5, 3]);
    for (let i = 0; i < y.size; i++) {
      const [n, h, w, c] = unravel(i, [2, 4, 5, 3]) as [number, number, number, number];
      expect(y.data[i]).to.equal(x.data[ravel([n, c, h, w], [2, 3, 4, 5])]);
    }
    expect(transpose(y, [0, 3, 1, 2]).toArray()).to.deep.equal(x.toArray());
    expect(gradcheck((xi) => transpose(xi!, [0, 3, 2, 1]), [x]).maxRelError).to.be.at.most(1e-6);
    expect(() => transpose(x, [0, 1, 1, 2])).to.throw(ArgumentError, /not a permutation/);
  });
});
