/**
 * GPU rows from headless Chromium (`--backends facenet-gpu-browser`): our GPU backend in gpu.js's two
 * browser modes, webgpu and webgl2, on the library's browser bundle, served from 127.0.0.1 like the demo.
 * The page builds the model with the same seed as Node and times what a user waits for: the forward pass
 * and the read back of its output (`await out.dataAsync()`; on webgpu that is when the queued kernels
 * have run). Without a GPU, Chromium runs both modes on SwiftShader, its CPU implementation of Vulkan and
 * GL: those rows are marked software, like headless-gl on Mesa.
 * Debian's chromium only (CHROMIUM_PATH to use another); never a downloaded browser.
 */
import { existsSync } from 'node:fs';
import { chromium, type Page } from 'playwright-core';
import { serveDemo } from '../scripts/serve_browser.js';
import { benchRow, median, ROW_SECONDS, type BenchModel, type BenchRow } from '../src/util/benchmark.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const BROWSER_GPU_MODES = ['webgpu', 'webgl2'] as const;
type BrowserMode = (typeof BROWSER_GPU_MODES)[number];

/** What renders each mode in this browser: the adapter (WebGPU) or the unmasked renderer (WebGL2). */
async function renderers(page: Page): Promise<Record<BrowserMode, string>> {
  // The page's globals, typed here by hand: this file compiles without the DOM library.
  interface Gl { RENDERER: number; getParameter(p: number): unknown; getExtension(name: string): { UNMASKED_RENDERER_WEBGL: number } | null }
  interface PageGlobals {
    navigator: { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } };
    document: { createElement(tag: 'canvas'): { getContext(kind: 'webgl2'): Gl | null } };
  }
  return page.evaluate(async () => {
    const { navigator, document } = globalThis as unknown as PageGlobals;
    const adapter = await navigator.gpu?.requestAdapter();
    const info = adapter?.info ?? {};
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    return {
      webgpu: adapter ? `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.description ?? ''}`.trim() || 'unknown adapter' : 'none',
      webgl2: gl ? String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER)) : 'none',
    };
  });
}

/** Seconds of each timed run of one model, batch and mode in the page (after one warm-up; ROW_SECONDS a row at most). */
async function timeInPage(page: Page, m: BenchModel, batch: number, mode: BrowserMode, runs: number): Promise<number[]> {
  return page.evaluate(async ({ arch, batch, height, width, mode, runs, rowSeconds }) => {
    const f = await import('/facenet.js' as string);
    await f.useBackend(`gpu:${mode}`);
    const model = f.buildModel(arch, { seed: 1 });
    model.eval();
    const x = f.randn([batch, 3, height, width], { seed: 2 });
    const once = async (): Promise<number> => {
      const start = performance.now();
      const out = f.noGrad(() => f.tidy(() => model.forward(x)));
      await out.dataAsync();
      out.dispose();
      return (performance.now() - start) / 1000;
    };
    const warm = await once();
    const times: number[] = [];
    for (let i = 0; i < Math.max(1, Math.min(runs, Math.floor(rowSeconds / warm))); i++) times.push(await once()); // benchmark.ts's runsWithin
    x.dispose();
    await f.useBackend('cpu');
    return times;
  }, { arch: m.name, batch, height: m.height, width: m.width, mode, runs, rowSeconds: ROW_SECONDS });
}

/** Rows `facenet-gpu-webgpu` and `facenet-gpu-webgl2` for each model and batch; says why when there are none. */
export async function benchBrowserGpu(models: BenchModel[], batches: number[], runs: number, report: (r: BenchRow) => void, log: (line: string) => void): Promise<void> {
  if (!existsSync(CHROMIUM)) return log(`(no browser GPU rows: no Chromium at ${CHROMIUM}; apt-get install chromium, or set CHROMIUM_PATH)`);
  const server = await serveDemo({ port: 0 });
  // WebGPU: headless Chromium offers an adapter only behind this flag.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}registry.json`); // a same-origin page to import the bundle into
    await page.addScriptTag({ url: '/gpu-browser.min.js' });
    const rendered = await renderers(page);
    for (const mode of BROWSER_GPU_MODES) {
      if (rendered[mode] === 'none') {
        log(`(no facenet-gpu-${mode} rows: Chromium has no ${mode} here)`);
        continue;
      }
      const software = /swiftshader|llvmpipe|software/i.test(rendered[mode]);
      log(`(facenet-gpu-${mode} in headless Chromium: ${rendered[mode]}${software ? ', a CPU emulating a GPU' : ''})`);
      for (const m of models) {
        if (m.name === 'mobilefacenet') continue; // a converted graph, not buildable in the page from a seed
        for (const batch of batches) {
          const times = await timeInPage(page, m, batch, mode, runs);
          const row = benchRow(m, batch, `facenet-gpu-${mode}`, 1, { seconds: median(times), runs: times.length });
          report(software ? { ...row, software_gl: true } : row);
        }
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }
}
