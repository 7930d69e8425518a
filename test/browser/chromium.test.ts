/**
 * The library in headless Chromium (Debian's chromium driven by playwright-core; never a downloaded
 * browser), served from 127.0.0.1 by scripts/serve_browser.ts: the ESM bundle loads without Node and
 * embeds like Node does; every GPU op matches the CPU on WebGL2 (small shapes, forward and backward) and
 * on WebGPU (forward: it is asynchronous), where nn4.small2 embeds as on the CPU; the demo page compares two
 * photos as the Node pipeline does, on the CPU and on WebGPU, and leaves a screenshot in the artifacts.
 * Without Chromium the suite is pending (a failure under CI=true).
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serveDemo, type DemoServer } from '../../scripts/serve_browser.js';
import { buildModel } from '../../src/models/factory.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { noGrad } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { createPipeline } from '../../src/face/pipeline.js';
import { GPU_OPS, WEBGPU_FORWARD_OPS, type ParityResult } from '../gpu/parity.js';
import { SHARED, sharedPath } from '../shared.js';
import { benchBrowserGpu } from '../../bench/browser.js';
import { benchModel, type BenchRow } from '../../src/util/benchmark.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.FACENET_ARTIFACTS ?? join(ROOT, '.artifacts'));

/** The same input in Node and in the page: a smooth pattern, no RNG to keep in step. */
const pattern = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5);

/** A random nn4.small2 as safetensors bytes (base64, for the page), and its CPU output on pattern(2 x 3 x 96 x 96). */
function nn4Reference(): { b64: string; n: number; want: number[] } {
  const model = buildModel('nn4.small2');
  model.eval();
  const bytes = encodeSafetensors(new Map([...model.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }])), { architecture: 'nn4.small2' });
  const x = pattern(2 * 3 * 96 * 96);
  const want = noGrad(() => Array.from((model.forward(new Tensor(x, [2, 3, 96, 96])) as Tensor).data));
  return { b64: Buffer.from(bytes).toString('base64'), n: x.length, want };
}

/**
 * Checks every parity result (kernels ran on the device, within tolerance) and writes the per-op worst
 * case, the README's table column for this mode, to the artifacts; returns it.
 */
function checkParity(mode: string, ops: readonly string[], results: ParityResult[]): { op: string; maxAbs: number; maxRel: number }[] {
  expect(results).to.have.length(3 * ops.length);
  for (const r of results) {
    expect(r.launches, `${r.op} ran kernels on the device`).to.be.greaterThan(0);
    expect(r.withinTolerance, `${r.op} (${r.description}): max abs ${r.maxAbs}, rel ${r.maxRel}`).to.equal(true);
  }
  const perOp = ops.map((op) => {
    const mine = results.filter((r) => r.op === op);
    return { op, maxAbs: Math.max(...mine.map((r) => r.maxAbs)), maxRel: Math.max(...mine.map((r) => r.maxRel)) };
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, `${mode}-parity.json`), JSON.stringify(perOp, null, 1));
  return perOp;
}

describe('browser: headless Chromium', function () {
  this.timeout(600000);
  let server: DemoServer | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      const reason = `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
      if (process.env.CI === 'true') throw new Error(`${reason}; CI requires it`);
      console.log(`      (pending: ${reason})`);
      this.skip();
    }
    const parityBundle = join(tmpdir(), `facenet-parity-${process.pid}.js`);
    await build({ entryPoints: [join(ROOT, 'dist/test/gpu/parity.js')], bundle: true, format: 'esm', platform: 'browser', external: ['gpu.js'], outfile: parityBundle, logLevel: 'silent' });
    server = await serveDemo({ port: 0, from: join(SHARED, 'weights'), extraFiles: { '/parity.js': parityBundle } });
    // WebGPU: headless Chromium offers an adapter (SwiftShader, on the CPU) only behind this flag.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu'] });
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${server.url}registry.json`); // a same-origin page to import the bundles into
    await page.addScriptTag({ url: '/gpu-browser.min.js' });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the ESM bundle has no Node built-ins and embeds in the page as Node does (CPU: one thread, the WebAssembly GEMM, fused: Chromium has relaxed SIMD)', async () => {
    const bundle = readFileSync(join(ROOT, 'dist/browser/facenet.js'), 'utf8');
    expect(bundle).to.not.match(/from\s*["']node:|require\(["']/);
    const { b64, n, want } = nn4Reference();
    const got = await page.evaluate(async ({ b64, n, url }) => {
      const f = await import(url);
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const { model } = f.loadModelBytes(bytes, 'nn4.small2.safetensors');
      const input = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5);
      return { y: Array.from(f.noGrad(() => model.forward(new f.Tensor(input, [2, 3, 96, 96])).data)) as number[], backend: f.activeBackend() as string, kernel: f.gemmKernel() as string, fused: f.gemmFused() as boolean };
    }, { b64, n, url: '/facenet.js' });
    expect(got.backend).to.equal('cpu');
    expect(got.kernel).to.equal('wasm');
    expect(got.fused, 'the fused kernel in the page').to.equal(true);
    expect(got.y).to.have.length(256);
    // Same blocking, and the same kernel but for the fused multiply-adds where Node has no relaxed SIMD
    // (Node 20): float32 rounding apart.
    const maxAbs = Math.max(...got.y.map((v, i) => Math.abs(v - want[i]!)));
    expect(maxAbs).to.be.at.most(1e-6);
    expect(pageErrors).to.deep.equal([]);
  });

  it('webgl2: every GPU op, forward and backward, equals the CPU within 1e-5 + 1e-4 max|cpu| (3 small geometries each)', async () => {
    const results = await page.evaluate(async ({ ops, url }) => {
      const { parity } = await import(url);
      const out: ParityResult[] = [];
      for (const op of ops) for (const seed of [1, 2, 3]) out.push(await parity(op, seed, 'gpu:webgl2'));
      return out;
    }, { ops: [...GPU_OPS], url: '/parity.js' });
    const perOp = checkParity('webgl2', GPU_OPS, results);
    const worst = perOp.reduce((a, b) => (b.maxRel > a.maxRel ? b : a));
    console.log(`      webgl2 in Chromium: ${perOp.length} ops, worst ${worst.op} max abs ${worst.maxAbs.toExponential(1)} (rel ${worst.maxRel.toExponential(1)}); table in ${ARTIFACTS}/webgl2-parity.json`);
    expect(pageErrors).to.deep.equal([]);
  });

  it('webgpu: every GPU op\'s forward equals the CPU within 1e-5 + 1e-4 max|cpu|; what reads values mid-graph says GPU_ASYNC', async () => {
    const got = await page.evaluate(async ({ ops, url, lib }) => {
      const { parityForward } = await import(url);
      const out: ParityResult[] = [];
      for (const op of ops) for (const seed of [1, 2, 3]) out.push(await parityForward(op, seed, 'gpu:webgpu'));
      const f = await import(lib); // the library's own bundle (parity.js carries a copy with its own backend state)
      await f.useBackend('gpu:webgpu');
      const refused = (fn: () => unknown): string => {
        try {
          fn();
          return 'no error';
        } catch (e) {
          return `${(e as { code?: string }).code}: ${(e as Error).message}`;
        }
      };
      const x = new f.Tensor(Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => Math.sin(i)), [2, 3, 4, 4], { requiresGrad: true });
      const y = f.relu(x);
      const errors = {
        data: refused(() => y.data), // a synchronous read
        backward: refused(() => y.backward(f.ones([2, 3, 4, 4]))), // relu's gradient kernel, read back for the tape
        trainingBatchnorm: refused(() => f.batchNorm(x, { gamma: f.ones([3]), beta: f.zeros([3]), runningMean: f.zeros([3]), runningVar: f.ones([3]), training: true })),
      };
      // Host values are taken at the call, even when the launch waits for a pending input.
      const host = new f.Tensor(new Float32Array(96).fill(1), [2, 3, 4, 4]);
      const sum = f.noGrad(() => f.tidy(() => f.add(f.relu(f.relu(x)), host)));
      host.data.fill(100);
      const hostTaken = Array.from(await sum.dataAsync()).every((v, i) => v === Math.fround(Math.max(0, Math.fround(Math.sin(i))) + 1));
      sum.dispose();
      const relu = Array.from(await y.dataAsync()) as number[];
      y.dispose();
      await f.gpuDevice().settled(); // the refused gradient's kernel may still be compiling, holding y's buffer
      const backend = f.activeBackend() as string;
      const liveBuffers = f.gpuDevice().stats().liveBuffers as number; // none left behind by the refused reads
      await f.useBackend('cpu');
      return { out, errors, relu, backend, liveBuffers, hostTaken };
    }, { ops: [...WEBGPU_FORWARD_OPS], url: '/parity.js', lib: '/facenet.js' });
    expect(got.backend).to.equal('gpu:webgpu');
    expect(got.liveBuffers).to.equal(0);
    expect(got.hostTaken, 'host operand read at the call').to.equal(true);
    checkParity('webgpu', WEBGPU_FORWARD_OPS, got.out);
    expect(got.relu.every((v, i) => v === Math.max(0, Math.fround(Math.sin(i))))).to.equal(true);
    for (const [what, message] of Object.entries(got.errors)) expect(message, what).to.match(/^GPU_ASYNC: .*await tensor\.dataAsync\(\)/);
    expect(pageErrors).to.deep.equal([]);
  });

  it('webgpu: nn4.small2 embeds as on the CPU (1e-5), queued without waiting; 5 passes leave no device buffer alive', async () => {
    const { b64, n, want } = nn4Reference();
    const got = await page.evaluate(async ({ b64, n, url }) => {
      const f = await import(url);
      await f.useBackend('gpu:webgpu');
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const { model } = f.loadModelBytes(bytes, 'nn4.small2.safetensors');
      const input = new f.Tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5), [2, 3, 96, 96]);
      const embed = async (): Promise<number[]> => {
        const out = f.noGrad(() => f.tidy(() => model.forward(input)));
        const pending = out.device.value instanceof Promise; // the forward pass returned before the GPU ran it
        const values = Array.from(await out.dataAsync()) as number[];
        out.dispose();
        return pending ? values : [];
      };
      const first = await embed();
      const after1 = f.gpuDevice().stats();
      for (let i = 0; i < 4; i++) await embed();
      const after5 = f.gpuDevice().stats();
      await f.useBackend('cpu');
      return { y: first, after1, after5 };
    }, { b64, n, url: '/facenet.js' });
    expect(got.y, 'results pending after forward()').to.have.length(256);
    const maxAbs = Math.max(...got.y.map((v, i) => Math.abs(v - want[i]!)));
    console.log(`      webgpu in Chromium: nn4.small2 max |gpu - cpu| ${maxAbs.toExponential(1)}; ${(got.after5.launches - got.after1.launches) / 4} launches a pass`);
    expect(maxAbs).to.be.at.most(1e-5);
    expect(got.after1.liveBuffers).to.equal(0);
    expect(got.after5.liveBuffers).to.equal(0);
    expect(got.after5.kernels).to.equal(got.after1.kernels);
    expect(got.after5.compiled).to.equal(got.after1.compiled);
    expect(pageErrors).to.deep.equal([]);
  });

  it('demo page: two photos give the Node pipeline\'s distance and decision, and the same on WebGPU; screenshot saved', async function () {
    const raw = sharedPath(this, 'faces/openface-examples/raw');
    const photos = [join(raw, 'clapton-1.jpg'), join(raw, 'clapton-2.jpg')] as const;
    const demo = await browser!.newPage({ viewport: { width: 1000, height: 800 } });
    demo.on('pageerror', (e) => pageErrors.push(e.message));
    await demo.goto(server!.url);
    await demo.waitForFunction("document.getElementById('result').textContent.startsWith('Ready')", null, { timeout: 300000 });
    await demo.setInputFiles('#a', photos[0]);
    await demo.setInputFiles('#b', photos[1]);
    await demo.click('#compare');
    await demo.waitForFunction("document.getElementById('result').dataset.json || document.getElementById('result').dataset.error", null, { timeout: 300000 });
    const error = await demo.getAttribute('#result', 'data-error');
    expect(error, await demo.textContent('#result') ?? '').to.equal(null);
    const shown = JSON.parse((await demo.getAttribute('#result', 'data-json'))!) as { distance: number; same: boolean; threshold: number; model: string; backend: string };
    mkdirSync(ARTIFACTS, { recursive: true });
    await demo.screenshot({ path: join(ARTIFACTS, 'browser-demo.png'), fullPage: true });
    const node = await (await createPipeline({ from: join(SHARED, 'weights') })).compare(photos[0], photos[1]);
    console.log(`      demo: distance ${shown.distance.toFixed(4)} in Chromium (${shown.backend}), ${node.distance.toFixed(4)} in Node; screenshot in ${ARTIFACTS}`);
    expect(shown.model).to.equal(node.model);
    expect(shown.same).to.equal(node.same);
    expect(shown.same).to.equal(true); // the same person
    // The browser decodes JPEG with its own decoder (libjpeg-turbo; Node uses jpeg-js): pixels differ by
    // rounding, so the distances agree closely but not exactly.
    expect(Math.abs(shown.distance - node.distance)).to.be.at.most(0.02);
    // Again on the page's GPU backend: WebGPU here (the embedder; detection runs on the CPU, which reads
    // scores mid-graph). Same pixels, so the same distance up to float32 rounding in the embedder.
    await demo.selectOption('#backend', 'gpu');
    await demo.click('#compare');
    await demo.waitForFunction("document.getElementById('result').dataset.json || document.getElementById('result').dataset.error", null, { timeout: 300000 });
    const gpuError = await demo.getAttribute('#result', 'data-error');
    expect(gpuError, await demo.textContent('#result') ?? '').to.equal(null);
    const onGpu = JSON.parse((await demo.getAttribute('#result', 'data-json'))!) as typeof shown & { seconds: number };
    console.log(`      demo on ${onGpu.backend}: distance ${onGpu.distance.toFixed(6)} (cpu in the page ${shown.distance.toFixed(6)}), ${onGpu.seconds} s`);
    expect(onGpu.backend).to.equal('gpu:webgpu');
    expect(onGpu.same).to.equal(shown.same);
    expect(Math.abs(onGpu.distance - shown.distance)).to.be.at.most(1e-4);
    expect(pageErrors).to.deep.equal([]);
    await demo.close();
  });
});

describe('npm run bench: browser GPU rows', function () {
  this.timeout(600000);
  it('times nn4.small2 on webgpu and webgl2 in headless Chromium, rows marked software on SwiftShader', async function () {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI === 'true') throw new Error(`no Chromium at ${CHROMIUM}; CI requires it`);
      this.skip();
    }
    const rows: BenchRow[] = [], said: string[] = [];
    await benchBrowserGpu([benchModel('nn4.small2')], [1], 1, (r) => rows.push(r), (line) => said.push(line));
    expect(rows.map((r) => r.backend)).to.deep.equal(['facenet-gpu-webgpu', 'facenet-gpu-webgl2']);
    for (const r of rows) {
      expect(r).to.include({ model: 'nn4.small2', batch: 1, threads: 1, runs: 1 });
      expect(r.ms_per_image).to.be.greaterThan(0);
      expect(r.img_per_s).to.be.closeTo(1000 / r.ms_per_image, 1e-9);
    }
    // Each row says what rendered it; SwiftShader (Chromium without a GPU, as on CI) is marked software.
    for (const r of rows) {
      const line = said.find((l) => l.startsWith(`(${r.backend} in headless Chromium: `));
      expect(line, r.backend).to.be.a('string');
      expect(r.software_gl === true, line).to.equal(/swiftshader/i.test(line!));
    }
  });
});

describe('browser bundle', () => {
  it("is the package's facenet-ts/browser export, and loads anywhere (no Node-only code at module load)", async () => {
    const bundle = (await import('facenet-ts/browser' as string)) as { createBrowserPipeline?: unknown; conv2d?: unknown };
    expect(typeof bundle.createBrowserPipeline).to.equal('function');
    expect(typeof bundle.conv2d).to.equal('function');
  });
});
