/**
 * The bundles `npm run build` makes after tsc, with esbuild (a devDependency):
 * - dist/browser/facenet.js: the library for browsers (gpu.js stays external: the page loads it).
 * - dist/bundle/cli/facenet.js: the `facenet` command (package.json's bin) as one file, npm packages
 *   external. Node then reads and compiles one file where it resolved ~100 modules one by one: a one-shot
 *   command starts 35-60 ms sooner (`facenet compare` of two photos 0.58-0.60 -> 0.53-0.57 s here).
 *   The library starts its worker threads from the file beside its own module (threads.ts: gemm_worker.js,
 *   read_ahead.ts: read_ahead_worker.js), which in a bundle is the bundle's folder: both are bundled there too.
 *   The folder lies three levels under the package root, as dist/src/cli/ does, so package.json and
 *   weights/models.json are found at ../../../ from either.
 */
import { build, type BuildOptions } from 'esbuild';

const forNode: BuildOptions = { bundle: true, format: 'esm', platform: 'node', packages: 'external', logLevel: 'warning' };

await Promise.all([
  build({ entryPoints: ['dist/src/browser.js'], bundle: true, format: 'esm', platform: 'browser', external: ['gpu.js'], logLevel: 'warning', outfile: 'dist/browser/facenet.js' }),
  build({ ...forNode, entryPoints: ['dist/src/cli/main.js'], outfile: 'dist/bundle/cli/facenet.js' }),
  build({ ...forNode, entryPoints: ['dist/src/backends/cpu/gemm_worker.js'], outfile: 'dist/bundle/cli/gemm_worker.js' }),
  build({ ...forNode, entryPoints: ['dist/src/io/read_ahead_worker.js'], outfile: 'dist/bundle/cli/read_ahead_worker.js' }),
]);
