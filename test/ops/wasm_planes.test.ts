/**
 * The WebAssembly passes (wasm_planes.ts, wasm_pool.ts, wasm_lrn.ts, wasm_cols.ts) against the TypeScript loops they replace, through the ops
 * that use them (convolution's im2col/col2im, batchnorm forward and backward, the inference scale-and-shift, ReLU and its gradient,
 * conv bias and its gradient, gradient accumulation, elementwise add/sub/mul/abs), on shapes that cover every chunking edge: one value
 * per plane ([N, C]), planes of 9 and 289 (a tail of 1), a plane larger than one chunk (16,384 values),
 * chunks that start mid-way through the channels, one channel. Also the kernels themselves against float64, and ReLU's special values.
 */
import { expect } from 'chai';
import { abs, add, batchNorm, l2Pool2d, leakyRelu, lrn, matmul, noGrad, maxPool2d, conv2d, conv2dScaleShift, mul, prelu, relu, sub, sum, tensor, tidy, type Tensor } from '../../src/index.js';
import {
  affinePlanes, batchNormBackward, batchNormCoefficients, batchNormForward, batchNormInputGradient, batchNormMoments, batchNormNormalization, batchNormSums, planesModuleBytes,
  setWasmPlanes, shiftedSums, wasmPlanesAvailable,
} from '../../src/backends/cpu/wasm_planes.js';
import { expectClose, randomTensor } from '../helpers.js';
import type { PoolOptions } from '../../src/ops/pool.js';
import { maxPoolGradPlanes, wasmPoolAvailable } from '../../src/backends/cpu/wasm_pool.js';
import { wasmLrnAvailable } from '../../src/backends/cpu/wasm_lrn.js';
import { colsBlocks, wasmColsAvailable } from '../../src/backends/cpu/wasm_cols.js';
import { convGeometry, type Conv2dOptions } from '../../src/ops/conv.js';
import { conv2dBackward } from '../../src/backends/cpu/conv.js';
import { Rng } from '../../src/util/random.js';
import { spawnSync } from 'node:child_process';

// [40, 3, 17, 17]: 56 planes to a chunk, so the second chunk starts at channel 2.
const SHAPES = [[6, 5], [2, 7, 3, 3], [40, 3, 17, 17], [1, 2, 130, 130], [4, 1, 5, 5]];

/** Runs fn with the WebAssembly passes and with the TypeScript loops; returns both results. */
function bothPaths(fn: () => Float64Array[]): [Float64Array[], Float64Array[]] {
  try {
    setWasmPlanes(true);
    const wasm = tidy(fn);
    setWasmPlanes(false);
    return [wasm, tidy(fn)];
  } finally {
    setWasmPlanes(true);
  }
}

const values = (...ts: (Tensor | null | undefined)[]): Float64Array[] => ts.map((t) => Float64Array.from(t!.data));

function expectSame(got: Float64Array[], want: Float64Array[], what: string): void {
  got.forEach((g, i) => {
    const scale = want[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-30);
    expectClose(g, want[i]!, 2e-6 * scale, 0, `${what} #${i}`);
  });
}

describe('WebAssembly SIMD passes (batchnorm, scale-and-shift, ReLU, bias, accumulation)', () => {
  it('the modules are valid WebAssembly and run here (else every comparison below would compare the TypeScript with itself)', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(planesModuleBytes())).to.equal(true);
    expect(wasmPlanesAvailable(), 'planes').to.equal(true);
    expect(wasmPoolAvailable(), 'pooling').to.equal(true);
    expect(wasmLrnAvailable(), 'LRN').to.equal(true);
    expect(wasmColsAvailable(), 'im2col').to.equal(true);
    setWasmPlanes(false);
    expect([wasmPlanesAvailable(), wasmPoolAvailable(), wasmLrnAvailable(), wasmColsAvailable()], 'one switch for all').to.deep.equal([false, false, false, false]);
    setWasmPlanes(true);
  });

  for (const shape of SHAPES) {
    it(`batchnorm in training mode, with and without ReLU, forward and every gradient: as the TypeScript loops (${shape.join('x')})`, () => {
      for (const withRelu of [false, true]) {
        const [wasm, js] = bothPaths(() => {
          const C = shape[1]!;
          const x = randomTensor(shape, 1), gamma = randomTensor([C], 2), beta = randomTensor([C], 3);
          for (const t of [x, gamma, beta]) t.requiresGrad = true;
          const runningMean = tensor(new Float32Array(C), [C]), runningVar = tensor(new Float32Array(C).fill(1), [C]);
          const y = batchNorm(x, { gamma, beta, runningMean, runningVar, training: true, relu: withRelu });
          sum(mul(y, randomTensor(shape, 4))).backward();
          expect([x.grad!.dtype, gamma.grad!.dtype, beta.grad!.dtype]).to.deep.equal(['float32', 'float32', 'float32']);
          return values(y, x.grad, gamma.grad, beta.grad, runningMean, runningVar);
        });
        expectSame(wasm, js, `relu=${withRelu}`);
      }
    });
  }

  it('eval-mode batchnorm and its gradient, conv2dScaleShift with ReLU, conv bias and its gradient: as the TypeScript loops', () => {
    const [wasm, js] = bothPaths(() => {
      const x = randomTensor([2, 3, 9, 9], 5), C = 3;
      x.requiresGrad = true;
      const y = batchNorm(x, { runningMean: randomTensor([C], 6), runningVar: tensor(new Float32Array([0.5, 1, 2]), [C]), training: false });
      sum(mul(y, y)).backward();
      const w = randomTensor([4, 3, 3, 3], 7), b = randomTensor([4], 8);
      b.requiresGrad = true;
      const z = conv2d(x, w, b, { padding: 1 });
      sum(mul(z, z)).backward();
      const s = conv2dScaleShift(x, w, Float64Array.from([1, -2, 0.5, 3]), Float64Array.from([0.1, 0.2, -0.3, 0]), true, { padding: 1 });
      return values(y, x.grad, z, b.grad, s);
    });
    expectSame(wasm, js, 'eval');
  });

  it('ReLU forward and backward, and gradient accumulation (a tensor used twice): as the TypeScript loops', () => {
    const [wasm, js] = bothPaths(() => {
      const x = randomTensor([3, 5, 7, 11], 9);
      x.requiresGrad = true;
      const y = relu(x);
      sum(mul(add(y, mul(y, y)), randomTensor([3, 5, 7, 11], 10))).backward();
      return values(y, x.grad);
    });
    for (let i = 0; i < 2; i++) expect(Buffer.from(Float32Array.from(wasm[i]!).buffer).equals(Buffer.from(Float32Array.from(js[i]!).buffer)), ['y', 'dx'][i]).to.equal(true);
  });

  it('elementwise add, sub, mul (same shape, per channel, with a number), abs and leaky ReLU, forward and gradients: as the TypeScript loops', () => {
    for (const shape of [[2, 3, 5, 7], [3, 4, 17, 17], [1, 2, 130, 130]]) {
      const [wasm, js] = bothPaths(() => {
        const C = shape[1]!;
        const a = randomTensor(shape, 11), b = randomTensor(shape, 12), c = randomTensor([1, C, 1, 1], 13);
        for (const t of [a, b, c]) t.requiresGrad = true;
        const outs = [add(a, b), sub(a, b), mul(a, b), add(a, c), sub(a, c), mul(a, c), add(a, 0.3), sub(a, 0.3), mul(a, -1.7), abs(a), leakyRelu(a, 0.1)];
        sum(outs.reduce((acc, t, i) => add(acc, mul(t, i + 1)))).backward();
        return values(...outs, a.grad, b.grad, c.grad);
      });
      expectSame(wasm, js, shape.join('x'));
    }
  });

  it('convolution im2col and col2im through the tap map and by row runs (wasm_cols.ts): forward and both gradients bit for bit as the TypeScript loops', () => {
    // Through the map (output rows under 8 pixels): stride 1, strides with asymmetric padding, groups (one
    // image at a time), blocks that start mid-image and mid-channel (K = 40*9 > 256, 24 images * 25
    // pixels > 512). By row runs (8 or more): dilation, 1x7 and 7x1 (rows all padding), 24x20 planes (the
    // TypeScript side copies runs there), stride 2 (vectors of even lanes) and 3 (one by one), stride 2
    // down and 1 across, and 40x40 planes (blocks within one image: spans of planes staged). Planes whose
    // tap map would be too large (over MAP_MAX entries: no map, spans bounded by the row runs): 180x180
    // (dx as a forward convolution of dy) and 400x300 at stride 2 (dx by col2im).
    const cases = [
      [[2, 5, 6, 6], [7, 5, 3, 3], { padding: 1 }], [[3, 4, 11, 9], [6, 4, 3, 3], { stride: 2, padding: [1, 0, 1, 1] }],
      [[2, 3, 10, 10], [4, 3, 3, 3], { dilation: 2, padding: 2 }], [[2, 4, 7, 7], [6, 2, 3, 3], { groups: 2, padding: 1 }],
      [[24, 40, 5, 5], [9, 40, 3, 3], { padding: 1 }], [[2, 6, 17, 17], [5, 6, 1, 7], { padding: [0, 0, 3, 3] }],
      [[2, 6, 17, 17], [5, 6, 7, 1], { padding: [3, 3, 0, 0] }], [[3, 5, 24, 20], [6, 5, 3, 3], { padding: 1 }],
      [[2, 3, 24, 20], [4, 3, 5, 5], { stride: 2, padding: 2 }], [[2, 3, 30, 29], [4, 3, 3, 3], { stride: 3, padding: [1, 0, 2, 1] }],
      [[2, 3, 21, 19], [5, 3, 3, 3], { stride: [2, 1], padding: 1 }], [[1, 3, 40, 40], [4, 3, 3, 3], { padding: 1 }],
      [[1, 2, 180, 180], [3, 2, 3, 3], { padding: 1 }], [[1, 2, 400, 300], [3, 2, 3, 3], { stride: 2, padding: 1 }],
    ] as const;
    expect(wasmColsAvailable()).to.equal(true);
    for (const [xs, ws, o] of cases) {
      const before = { ...colsBlocks };
      const [wasm, js] = bothPaths(() => {
        const x = randomTensor([...xs], 41), w = randomTensor([...ws], 42);
        x.requiresGrad = true; w.requiresGrad = true;
        const y = conv2d(x, w, null, o as Conv2dOptions);
        sum(mul(y, randomTensor([...y.shape], 43))).backward();
        return values(y, x.grad, w.grad);
      });
      for (let i = 0; i < 3; i++) expect(Buffer.from(Float32Array.from(wasm[i]!).buffer).equals(Buffer.from(Float32Array.from(js[i]!).buffer)), `${xs.join('x')} ${ws.join('x')} ${['y', 'dx', 'dw'][i]}`).to.equal(true);
      const g = convGeometry('test', xs, ws, o as Conv2dOptions), byRuns = g.OW >= 8, used = byRuns ? 'runs' : 'map', unused = byRuns ? 'map' : 'runs';
      expect([colsBlocks[used] > before[used], colsBlocks[unused] === before[unused]], `${xs.join('x')} ${ws.join('x')} went through the ${used} kernels only`).to.deep.equal([true, true]);
      // Products of 32^3 multiply-adds or more take the packed kernel, whose blocks are moved in place in its
      // memory; smaller ones the simple loops on plain copies (blocks through the cols module's own memory).
      const work = (g.O / g.groups) * (g.C / g.groups) * g.KH * g.KW * g.OH * g.OW * (g.groups === 1 ? g.N : 1);
      expect(colsBlocks.inPlace > before.inPlace, `${xs.join('x')} ${ws.join('x')}: blocks moved in place in the GEMM kernel's memory`).to.equal(work >= 32 ** 3);
    }
  });

  it('a convolution\'s tap table in the GEMM kernel\'s memory is loaded again once another product has used that memory', () => {
    // The table lies above the GEMM's regions; a larger product in between writes over it.
    const x = randomTensor([3, 5, 24, 20], 71), w = randomTensor([6, 5, 3, 3], 72), a = randomTensor([300, 300], 73);
    const before = colsBlocks.inPlace;
    const first = conv2d(x, w, null, { padding: 1 }).data.slice();
    matmul(a, a).dispose();
    const again = conv2d(x, w, null, { padding: 1 }).data;
    expect(colsBlocks.inPlace, 'blocks moved in place').to.be.greaterThan(before);
    expect(Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(first.buffer))).to.equal(true);
  });

  it('im2col and col2im in place in the GEMM kernel\'s memory, when their staging makes it grow mid-product: bit for bit as the TypeScript loops (a fresh Node)', () => {
    // A 1x1 convolution at stride 2 over 256 channels of 40x40: the GEMM reserves ~2 MB, a 512-column block
    // stages 256 channels of two images (3.3 MB) above it. The GEMM's view of its memory must be renewed.
    const url = (path: string): string => new URL(path, import.meta.url).href;
    const script = `
      const grown = new Set(), inCols = [];
      const grow = WebAssembly.Memory.prototype.grow;
      WebAssembly.Memory.prototype.grow = function (pages) {
        if (!new Error().stack.includes('colsInModule')) grown.add(this); else if (grown.has(this)) inCols.push(pages);
        return grow.call(this, pages);
      };
      const { conv2d, mul, sum, tidy } = await import('${url('../../src/index.js')}');
      const { setWasmPlanes } = await import('${url('../../src/backends/cpu/wasm_planes.js')}');
      const { colsBlocks } = await import('${url('../../src/backends/cpu/wasm_cols.js')}');
      const { randomTensor } = await import('${url('../helpers.js')}');
      const run = () => tidy(() => {
        const x = randomTensor([2, 256, 40, 40], 61), w = randomTensor([8, 256, 1, 1], 62);
        x.requiresGrad = true; w.requiresGrad = true;
        const y = conv2d(x, w, null, { stride: 2 });
        sum(mul(y, randomTensor(y.shape, 63))).backward();
        return [y, x.grad, w.grad].map((t) => Buffer.from(Float32Array.from(t.data).buffer).toString('base64'));
      });
      const wasm = run(), inPlace = colsBlocks.inPlace;
      setWasmPlanes(false);
      const js = run();
      console.log(JSON.stringify({ same: wasm.map((v, i) => v === js[i]), inPlace, grewInPlace: inCols.length }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).to.equal(0);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { same: boolean[]; inPlace: number; grewInPlace: number };
    expect(got.same, 'y, dx, dw').to.deep.equal([true, true, true]);
    expect(got.inPlace, 'blocks moved in place').to.be.greaterThan(0);
    expect(got.grewInPlace, 'the GEMM kernel\'s memory grown by a block in place').to.be.greaterThan(0);
  });

  it('col2im at stride 2 leaves the inputs no tap reads exactly as they were, -0 included (the vector adds -0 to them)', () => {
    // A 1x1 convolution at stride 2 reads only even rows and columns: dx's other values are never added to.
    const xs = [2, 3, 20, 20], ws = [4, 3, 1, 1], g = convGeometry('test', xs, ws, { stride: 2 });
    const dy = randomTensor([2, 4, g.OH, g.OW], 51).data, x = randomTensor(xs, 52).data, w = randomTensor(ws, 53).data;
    const before = colsBlocks.runs;
    const [wasm, js] = bothPaths(() => [Float64Array.from(conv2dBackward(dy, x, w, g, true, false, new Float32Array(2 * 3 * 20 * 20).fill(-0))[0]!)]);
    expect(colsBlocks.runs, 'the row-run kernels ran').to.be.greaterThan(before);
    const negativeZeros = (v: Float64Array): number => v.filter((d) => Object.is(d, -0)).length;
    expect([negativeZeros(wasm[0]!), negativeZeros(js[0]!)]).to.deep.equal([3 * 2 * 3 * 100, 3 * 2 * 3 * 100]);
    expect(Buffer.from(Float32Array.from(wasm[0]!).buffer).equals(Buffer.from(Float32Array.from(js[0]!).buffer))).to.equal(true);
  });

  it('max pooling forward and backward (strides, padding, ceil mode, planes larger than a chunk, ties): as the TypeScript loop', () => {
    const cases = [
      [[2, 3, 11, 9], { kernel: 3, stride: 2, padding: 1 }], [[1, 2, 8, 8], { kernel: 2, stride: 2 }],
      [[2, 2, 7, 10], { kernel: 3, stride: 2, ceilMode: true }], [[1, 1, 150, 150], { kernel: 3, stride: 1, padding: 1 }],
    ] as const;
    for (const [shape, o] of cases) {
      const [wasm, js] = bothPaths(() => {
        const x = tensor(randomTensor([...shape], 31).data.map((v) => Math.round(v * 2) / 2), [...shape]); // ties
        x.requiresGrad = true;
        const y = maxPool2d(x, o);
        sum(mul(y, randomTensor([...y.shape], 32))).backward();
        return values(y, x.grad);
      });
      for (let i = 0; i < 2; i++) expect(Buffer.from(Float32Array.from(wasm[i]!).buffer).equals(Buffer.from(Float32Array.from(js[i]!).buffer)), `${shape.join('x')} #${i}`).to.equal(true);
    }
  });

  it('PReLU forward and its gradients (per-channel slopes, planes larger than a chunk): as the TypeScript loops, bit for bit', () => {
    for (const shape of [[2, 3, 5, 7], [40, 3, 17, 17], [1, 2, 130, 130]]) {
      const [wasm, js] = bothPaths(() => {
        const x = randomTensor(shape, 41), alpha = randomTensor([shape[1]!], 42);
        x.requiresGrad = alpha.requiresGrad = true;
        const y = prelu(x, alpha);
        sum(mul(y, randomTensor(shape, 43))).backward();
        return values(y, x.grad, alpha.grad);
      });
      expect(Buffer.from(Float32Array.from(wasm[0]!).buffer).equals(Buffer.from(Float32Array.from(js[0]!).buffer)), `${shape.join('x')} y`).to.equal(true);
      expectSame(wasm, js, shape.join('x'));
    }
  });

  it('conv2dScaleShift with PReLU slopes (a PReLU applied as the output is written): the bits of prelu after its affine output, on both paths, and the paths agree', () => {
    for (const [shape, padding] of [[[2, 3, 5, 7], 1], [[3, 4, 17, 17], 0], [[1, 2, 130, 130], 1]] as const) {
      const O = 5, w = randomTensor([O, shape[1], 3, 3], 44), scale = Float64Array.from([1, -2, 0.5, 3, 0.25]), shift = Float64Array.from([0.1, 0.2, -0.3, 0, 1]);
      const slopes = Float32Array.from([0.25, -0.5, 0, 1.5, 0.1]);
      const [wasm, js] = bothPaths(() => noGrad(() => {
        const x = randomTensor([...shape], 45);
        const fused = conv2dScaleShift(x, w, scale, shift, slopes, { padding });
        const separate = prelu(conv2dScaleShift(x, w, scale, shift, false, { padding }), tensor(slopes, [O]));
        return values(fused, separate);
      }));
      for (const [path, [fused, separate]] of [['wasm', wasm], ['js', js]] as const) {
        expect(Buffer.from(Float32Array.from(fused!).buffer).equals(Buffer.from(Float32Array.from(separate!).buffer)), `${shape.join('x')} (${path})`).to.equal(true);
      }
      expectSame(wasm, js, shape.join('x'));
    }
    expect(() => conv2dScaleShift(randomTensor([1, 1, 4, 4], 46), randomTensor([2, 1, 3, 3], 47), Float64Array.from([1, 1]), Float64Array.from([0, 0]), new Float32Array(3)))
      .to.throw(/PReLU slopes of 2 values/);
  });

  it('LRN (beta 0.75, both conventions) forward and gradient: as the TypeScript loops, bit for bit (windows wider than the channels, planes not of whole groups)', () => {
    const cases = [[[2, 37, 7, 5], 5, 'torch'], [[1, 3, 4, 4], 5, 'tf'], [[2, 64, 12, 12], 5, 'torch'], [[1, 2, 3, 1], 7, 'torch'], [[2, 9, 130, 130], 3, 'tf']] as const;
    for (const [shape, size, convention] of cases) {
      const [wasm, js] = bothPaths(() => {
        const x = randomTensor([...shape], 51);
        x.requiresGrad = true;
        const y = lrn(x, { size, alpha: 1e-2, beta: 0.75, k: 2, convention });
        sum(mul(y, randomTensor([...shape], 52))).backward();
        return values(y, x.grad, noGrad(() => lrn(x, { size, alpha: 1e-2, beta: 0.75, k: 2, convention })));
      });
      for (let i = 0; i < 3; i++) expect(Buffer.from(Float32Array.from(wasm[i]!).buffer).equals(Buffer.from(Float32Array.from(js[i]!).buffer)), `${shape.join('x')} size ${size} #${i}`).to.equal(true);
    }
  });

  it('PReLU of NaN (either sign), ±0, ±Infinity and denormals: alpha * x below 0, x above, on both paths', () => {
    const specials = [NaN, -NaN, -0, 0, -1, 1, Infinity, -Infinity, 1e-45, -1e-45, -3];
    const x = new Float32Array(specials);
    new Uint32Array(x.buffer)[1] = 0xffc00000; // the NaN x86 makes: sign bit set
    for (const on of [true, false]) {
      setWasmPlanes(on);
      const y = prelu(tensor(x, [1, 1, x.length]), tensor([0.25], [1])).data;
      expect(Number.isNaN(y[0]) && Number.isNaN(y[1]), `NaNs (wasm=${on})`).to.equal(true);
      expect([...y.slice(2)].map((v) => Object.is(v, -0) ? '-0' : v), `wasm=${on}`).to.deep.equal(['-0', 0, -0.25, 1, Infinity, -Infinity, Math.fround(1e-45), '-0', -0.75]);
    }
    setWasmPlanes(true);
  });

  it('max pooling\'s gradient kernel drops an index outside its plane chunk (an empty window\'s -1) instead of writing there', () => {
    // 2 planes of 4 inputs, 2 outputs each: indices 5 and 7 are plane 1's; -1 and 99 are nobody's.
    const dy = new Float32Array([1, 2, 3, 4]), dx = new Float32Array(8).fill(7);
    expect(maxPoolGradPlanes(dy, new Int32Array([0, -1, 5, 99]), dx, 2, 4, 2)).to.equal(true);
    expect(Array.from(dx)).to.deep.equal([1, 0, 0, 0, 0, 3, 0, 0]);
    expect(maxPoolGradPlanes(dy, new Int32Array([3, 3, 7, 4]), dx, 2, 4, 2)).to.equal(true);
    expect(Array.from(dx)).to.deep.equal([0, 0, 0, 3, 4, 0, 0, 3]);
  });

  it('max pooling without a gradient (separable, no argmax) gives the argmax path\'s values bit for bit: ties, ±0, NaN, strides 1-3, ceil mode, padding', () => {
    const cases = [
      [[2, 3, 11, 9], { kernel: 3, stride: 2, padding: 1 }], [[1, 2, 8, 8], { kernel: 2, stride: 2 }],
      [[2, 2, 7, 10], { kernel: 3, stride: 2, ceilMode: true }], [[1, 1, 150, 150], { kernel: 3, stride: 1, padding: 1 }],
      [[3, 5, 17, 23], { kernel: [2, 5], stride: [1, 2], padding: [1, 2] }], [[2, 3, 13, 14], { kernel: 3, stride: 3, padding: 1 }],
      [[1, 2, 5, 40], { kernel: [1, 3], stride: 1 }], [[1, 1, 3, 3], { kernel: 3, stride: 1, padding: 1 }],
    ] as [number[], PoolOptions][];
    const rng = new Rng(61);
    for (const [shape, o] of cases) {
      // halves give ties and both zeros (Math.round(-0.2) is -0); a few NaNs of either sign
      const data = randomTensor([...shape], 62).data.map((v) => Math.round(v * 2) / 2);
      for (let i = 0; i < data.length; i += 1 + Math.floor(rng.uniform(0, 40))) data[i] = rng.uniform(0, 1) < 0.5 ? NaN : -NaN;
      const x = tensor(data, [...shape]);
      for (const on of [true, false]) {
        setWasmPlanes(on);
        const fast = noGrad(() => maxPool2d(x, o)).data;
        const withArgmax = maxPool2d(tensor(data.slice(), [...shape], { requiresGrad: true }), o).data;
        expect(Buffer.from(fast.buffer).equals(Buffer.from(withArgmax.buffer)), `${shape.join('x')} ${JSON.stringify(o)} wasm=${on}`).to.equal(true);
      }
    }
    setWasmPlanes(true);
  });

  it('L2 pooling forward and gradient (all-zero windows, strides, ceil mode, planes larger than a chunk): as the TypeScript loops, bit for bit', () => {
    const cases = [
      [[2, 3, 11, 9], { kernel: 3, stride: 2, padding: 1 }], [[2, 2, 7, 10], { kernel: 3, stride: 2, ceilMode: true }],
      [[1, 1, 150, 150], { kernel: 3, stride: 1, padding: 1 }], [[4, 16, 12, 12], { kernel: 3, stride: 1, padding: 1 }],
    ] as [number[], PoolOptions][];
    for (const [shape, o] of cases) {
      const [wasm, js] = bothPaths(() => {
        const data = randomTensor(shape, 71).data.map((v, i) => (i % 7 < 3 ? 0 : v)); // runs of zeros: all-zero windows
        const x = tensor(data, shape, { requiresGrad: true });
        const y = l2Pool2d(x, o);
        sum(mul(y, randomTensor([...y.shape], 72))).backward();
        return values(y, x.grad, noGrad(() => l2Pool2d(x, o)));
      });
      for (let i = 0; i < 3; i++) expect(Buffer.from(Float32Array.from(wasm[i]!).buffer).equals(Buffer.from(Float32Array.from(js[i]!).buffer)), `${shape.join('x')} #${i}`).to.equal(true);
    }
  });

  it('ReLU keeps NaN of either sign and maps -0 to +0 on both paths', () => {
    const specials = [NaN, -NaN, -0, 0, -1, 1, Infinity, -Infinity, 1e-45, -1e-45];
    const x = new Float32Array(specials);
    new Uint32Array(x.buffer)[1] = 0xffc00000; // the NaN x86 makes: sign bit set
    for (const on of [true, false]) {
      setWasmPlanes(on);
      const y = relu(tensor(x, [x.length])).data;
      expect(Number.isNaN(y[0]) && Number.isNaN(y[1]), `NaNs (wasm=${on})`).to.equal(true);
      expect([...y.slice(2)].map((v) => Object.is(v, -0) ? '-0' : v), `wasm=${on}`).to.deep.equal([0, 0, 0, 1, Infinity, 0, Math.fround(1e-45), 0]);
    }
    setWasmPlanes(true);
  });

  it('the kernels against float64 loops (affine, shifted sums, backward sums with the ReLU mask, input gradient)', () => {
    const rng = new Rng(3);
    for (const [N, C, P] of [[2, 5, 1], [3, 5, 3], [2, 7, 9], [4, 3, 64], [1, 2, 20000]] as const) {
      const n = N * C * P, plane = (i: number): number => Math.floor(i / P) % C;
      const r = (len: number): Float32Array => Float32Array.from({ length: len }, () => rng.uniform(-2, 2));
      const x = r(n), dy = r(n), out = r(n), a = r(C), b = r(C), m = r(C), d = r(C);
      const y = new Float32Array(n);
      expect(affinePlanes(x, y, N, C, P, a, b, false)).to.equal(true);
      expectClose(y, Float64Array.from(x, (v, i) => v * a[plane(i)]! + b[plane(i)]!), 1e-6, 1e-6, `affine ${N}x${C}x${P}`);
      const sums = shiftedSums(x, N, C, P, m)!, s1 = new Float64Array(C), s2 = new Float64Array(C);
      x.forEach((v, i) => { const u = Math.fround(v - m[plane(i)]!); s1[plane(i)]! += u; s2[plane(i)]! += Math.fround(u * u); }); // squares in float32, summed in float64
      expectClose(sums.s1, s1, 1e-9 * n, 1e-9);
      expectClose(sums.s2, s2, 1e-9 * n, 1e-9);
      const masked = new Float32Array(n), back = batchNormSums(dy, x, N, C, P, m, out, masked)!;
      const sd = new Float64Array(C), sdx = new Float64Array(C);
      dy.forEach((v, i) => { const g = out[i]! > 0 ? v : 0; sd[plane(i)]! += g; sdx[plane(i)]! += Math.fround(g * Math.fround(x[i]! - m[plane(i)]!)); });
      expectClose(masked, Float64Array.from(dy, (v, i) => (out[i]! > 0 ? v : 0)), 0, 0, 'mask');
      expectClose(back.sumDy, sd, 1e-9 * n, 1e-9);
      expectClose(back.sumDyXc, sdx, 1e-9 * n, 1e-9);
      const dx = new Float32Array(n);
      expect(batchNormInputGradient(dy, x, dx, N, C, P, a, m, b, d)).to.equal(true);
      expectClose(dx, Float64Array.from(dy, (v, i) => a[plane(i)]! * v - b[plane(i)]! * (x[i]! - m[plane(i)]!) - d[plane(i)]!), 1e-5, 1e-5, 'dx');
    }
  });

  it('batchnorm\'s fused forward in training (one pass: sums, statistics, scale and shift) gives the bits of its two passes', () => {
    const rng = new Rng(6);
    for (const [N, C, P] of [[2, 5, 1], [3, 5, 3], [16, 300, 289], [4, 3, 64], [2, 3, 20000]] as const) {
      const n = N * C * P, r = (len: number): Float32Array => Float32Array.from({ length: len }, () => rng.uniform(-2, 2));
      // a mean far above the spread, values over 2^-20..2^20: sums whose order shows
      const x = Float32Array.from(r(n), (v) => 100 + v * 2 ** Math.round(rng.uniform(-20, 5)));
      const gamma = r(C), beta = r(C), first = Float64Array.from({ length: C }, (_, c) => x[c * P]!), eps = 1e-3;
      for (const relu of [true, false]) {
        const what = `${N}x${C}x${P} relu ${relu}`;
        const y = new Float32Array(n), fused = batchNormForward(x, y, N, C, P, relu, first, gamma, beta, eps)!;
        const sums = shiftedSums(x, N, C, P, first)!;
        expect([...fused.s1], `s1 ${what}`).to.deep.equal([...sums.s1]);
        expect([...fused.s2], `s2 ${what}`).to.deep.equal([...sums.s2]);
        const [mean, variance] = [new Float64Array(C), new Float64Array(C)], [invstd, gain, bias] = [new Float32Array(C), new Float32Array(C), new Float32Array(C)];
        batchNormMoments(sums.s1, sums.s2, first, N * P, mean, variance);
        batchNormNormalization(mean, variance, eps, gamma, beta, invstd, gain, bias);
        const expected = new Float32Array(n);
        affinePlanes(x, expected, N, C, P, gain, bias, relu);
        expect(Buffer.from(y.buffer).equals(Buffer.from(expected.buffer)), `y ${what}`).to.equal(true);
      }
    }
  });

  it('batchnorm\'s fused backward (one pass: mask, sums, dx) gives the bits of its two passes, in groups of channels and planes over a chunk', () => {
    const rng = new Rng(5);
    // [16, 300, 289]: groups of 14 channels (the last one short); [2, 3, 20000]: planes summed in pieces.
    for (const [N, C, P] of [[2, 5, 1], [3, 5, 3], [16, 300, 289], [4, 3, 64], [2, 3, 20000]] as const) {
      const n = N * C * P, r = (len: number): Float32Array => Float32Array.from({ length: len }, () => rng.uniform(-2, 2));
      // dy over 2^-20..2^20: float64 sums that are not exact, so the order of the sums shows
      const dy = Float32Array.from(r(n), (v) => v * 2 ** Math.round(rng.uniform(-20, 20)));
      const x = r(n), gain = r(C), mean = r(C), invstd = Float32Array.from(r(C), Math.abs), shift = r(C);
      // The ReLU's edge: outputs of +-0 and +-tiny (shift 0 in channel 0), NaN and infinities (the last channel)
      shift[0] = 0;
      [0, -0, 1e-45, -1e-45, 1e-38, -1e-38].forEach((v, i) => { if (i < P) x[i] = v; });
      [NaN, -NaN, Infinity, -Infinity].forEach((v, i) => { if (i < P) x[(C - 1) * P + i] = v; });
      x[(C - 1) * P] = NaN;
      const out = new Float32Array(n); // the forward output whose mask the fused pass recomputes from x
      affinePlanes(x, out, N, C, P, gain, shift, true);
      for (const training of [true, false]) {
        for (const reluOf of [out, null]) {
          const what = `${N}x${C}x${P} training ${training} relu ${!!reluOf}`;
          const fusedDx = new Float32Array(n), fused = batchNormBackward(dy, x, !!reluOf, fusedDx, N, C, P, mean, gain, invstd, shift, training)!;
          const masked = new Float32Array(n), sums = batchNormSums(dy, x, N, C, P, mean, reluOf, masked)!, dx = new Float32Array(n);
          const [sumDyXhat, b, d] = [new Float32Array(C), new Float32Array(C), new Float32Array(C)];
          if (training) batchNormCoefficients(gain, invstd, sums.sumDy, sums.sumDyXc, N * P, sumDyXhat, b, d);
          const dyIn = reluOf ? masked : dy;
          if (training) batchNormInputGradient(dyIn, x, dx, N, C, P, gain, mean, b, d);
          else affinePlanes(dyIn, dx, N, C, P, gain, new Float32Array(C), false);
          expect([...fused.sumDy], `sum(dy) ${what}`).to.deep.equal([...sums.sumDy]);
          expect([...fused.sumDyXc], `sum(dy*(x-mean)) ${what}`).to.deep.equal([...sums.sumDyXc]);
          expect(Buffer.from(fusedDx.buffer).equals(Buffer.from(dx.buffer)), `dx ${what}`).to.equal(true);
        }
      }
    }
  });
});
