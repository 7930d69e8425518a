/**
 * Serves the browser demo (scripts/browser/index.html) on 127.0.0.1: the library bundle
 * (dist/browser/facenet.js, made by `npm run build`), gpu.js's browser build, the registry's metric and
 * threshold table, and converted models by registry id (fetched and converted on first use, from
 * FACENET_WEIGHTS_MIRROR / --from like every other command).
 *   node dist/scripts/serve_browser.js [--port 8080] [--from ../shared/weights]
 */
import { createServer, type Server } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchModel, registry } from '../src/io/registry.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // the repository (this file runs from dist/scripts)
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json', '.safetensors': 'application/octet-stream' };

export interface DemoServer { url: string; close(): Promise<void> }

export interface ServeOptions {
  port?: number;
  /** Mirror directory of source weights (default: FACENET_WEIGHTS_MIRROR). */
  from?: string;
  /** More files to serve: URL path -> file (the browser test adds its parity bundle). */
  extraFiles?: Record<string, string>;
  log?: (line: string) => void;
}

export function serveDemo(options: ServeOptions = {}): Promise<DemoServer> {
  const gpuBrowser = join(dirname(createRequire(import.meta.url).resolve('gpu.js/package.json')), 'dist', 'gpu-browser.min.js');
  const files: Record<string, string> = {
    '/': join(ROOT, 'scripts/browser/index.html'),
    '/facenet.js': join(ROOT, 'dist/browser/facenet.js'),
    '/gpu-browser.min.js': gpuBrowser,
    ...options.extraFiles,
  };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const send = (status: number, body: string | Uint8Array, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    try {
      if (path === '/registry.json') {
        const table = Object.fromEntries(Object.entries(registry()).map(([id, e]) => [id, { metric: e.metric, threshold: e.threshold }]));
        return send(200, JSON.stringify(table), TYPES['.json']);
      }
      const model = /^\/models\/([\w.-]+)\.safetensors$/.exec(path);
      if (model) {
        if (!registry()[model[1]!]) return send(404, `no model ${model[1]} in the registry`);
        return send(200, readFileSync(fetchModel(model[1]!, { from: options.from, log: options.log })), TYPES['.safetensors']);
      }
      const file = files[path];
      if (!file) return send(404, 'not found');
      if (!existsSync(file)) return send(500, `${file} is missing: run \`npm run build\` first`);
      return send(200, readFileSync(file), TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream');
    } catch (err) {
      options.log?.(`${path}: ${(err as Error).message}`);
      return send(500, (err as Error).message);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): string | undefined => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] : undefined; };
  const s = await serveDemo({ port: Number(arg('port') ?? 8080), from: arg('from'), log: (l) => console.log(l) });
  console.log(`facenet-ts browser demo: ${s.url} (Ctrl-C to stop)`);
}
