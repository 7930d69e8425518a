/**
 * residual(shortcut, branch, { scale, relu }) = act(shortcut + scale * branch): against a naive reference
 * and finite differences in float64, and in float32 the values and gradients of the three ops it replaces
 * (mul, add, relu) on the WebAssembly and the TypeScript paths, special values included.
 */
import { expect } from 'chai';
import { add, gradcheck, mul, relu, residual, ShapeError, sum, tensor, tidy, type Tensor } from '../../src/index.js';
import { setWasmPlanes, wasmPlanesAvailable } from '../../src/backends/cpu/wasm_planes.js';
import { expectClose, randomTensor } from '../helpers.js';

const OPTIONS = [{}, { relu: true }, { scale: 0.17 }, { scale: 0.17, relu: true }, { scale: -2.5, relu: true }];

/** The three ops residual replaces. */
const composed = (x: Tensor, b: Tensor, o: { scale?: number; relu?: boolean }): Tensor => {
  const s = add(x, o.scale === undefined || o.scale === 1 ? b : mul(b, o.scale));
  return o.relu ? relu(s) : s;
};

/** Output, and both gradients of sum(output * weights). */
function withGradients(op: (x: Tensor, b: Tensor) => Tensor, shape: number[], seed: number): Float32Array[] {
  const x = randomTensor(shape, seed), b = randomTensor(shape, seed + 1), weights = randomTensor(shape, seed + 2);
  x.requiresGrad = true;
  b.requiresGrad = true;
  const y = op(x, b);
  sum(mul(y, weights)).backward();
  return [y, x.grad!, b.grad!].map((t) => Float32Array.from(t.data));
}

describe('residual (the sum closing a residual block)', () => {
  it('float64: forward against the reference act(x + scale * b), and gradcheck of both inputs (one tensor as both too)', () => {
    for (const o of OPTIONS) {
      const x = randomTensor([2, 3, 4, 5], 1, 'float64'), b = randomTensor([2, 3, 4, 5], 2, 'float64');
      const s = o.scale ?? 1;
      const want = Array.from(x.data, (v, i) => { const t = v + s * b.data[i]!; return o.relu ? Math.max(t, 0) : t; });
      expectClose(residual(x, b, o).data, want, 1e-15, 0, JSON.stringify(o));
      expect(gradcheck((p, q) => residual(p!, q!, o), [x, b]).maxRelError, JSON.stringify(o)).to.be.at.most(1e-6);
      expect(gradcheck((p) => residual(p!, p!, o), [x]).maxRelError, `x as both, ${JSON.stringify(o)}`).to.be.at.most(1e-6);
    }
  });

  it('float32: the values and gradients of mul, add and relu, bit for bit, on the WebAssembly and the TypeScript paths', function () {
    if (!wasmPlanesAvailable()) this.skip();
    try {
      for (const on of [true, false]) {
        setWasmPlanes(on);
        for (const shape of [[2, 3, 5, 7], [1, 2, 130, 130], [7]]) {
          for (const o of OPTIONS) {
            const got = tidy(() => withGradients((x, b) => residual(x, b, o), shape, 5));
            const want = tidy(() => withGradients((x, b) => composed(x, b, o), shape, 5));
            got.forEach((g, i) => expect(g.every((v, k) => v === want[i]![k]), `wasm=${on} ${shape} ${JSON.stringify(o)} ${['y', 'dx', 'db'][i]}`).to.equal(true));
          }
        }
      }
    } finally {
      setWasmPlanes(true);
    }
  });

  it('NaN (either sign), ±0 and ±Infinity: as the three ops on both paths (a ReLU keeps NaN and maps -0 to +0)', () => {
    const specials = new Float32Array([NaN, NaN, -0, 0, -1, 1, Infinity, -Infinity, 1e-45, -1e-45, 3, -3]);
    new Uint32Array(specials.buffer)[1] = 0xffc00000; // the NaN x86 makes: sign bit set
    const x = tensor(specials, [12]), b = tensor(Float32Array.from(specials).reverse(), [12]);
    try {
      for (const on of [true, false]) {
        setWasmPlanes(on);
        for (const o of OPTIONS) {
          const got = residual(x, b, o).data, want = composed(x, b, o).data;
          got.forEach((v, i) => expect(Object.is(v, want[i]) || (v === 0 && want[i] === 0), `wasm=${on} ${JSON.stringify(o)} at ${i}: ${v} vs ${want[i]}`).to.equal(true));
        }
      }
    } finally {
      setWasmPlanes(true);
    }
  });

  it('refuses operands of different shapes or dtypes', () => {
    expect(() => residual(randomTensor([2, 3, 4, 4], 1), randomTensor([2, 3, 4, 5], 2))).to.throw(ShapeError, /residual: .*shortcut's shape \[2, 3, 4, 4\]/);
    expect(() => residual(randomTensor([2, 3], 1), randomTensor([2, 3], 2, 'float64'))).to.throw(/dtype/);
  });
});
