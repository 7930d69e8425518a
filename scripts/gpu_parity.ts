/**
 * Prints the GPU parity table (op x gpu.js mode: worst max abs / rel difference to the CPU backend over
 * several random geometries per op, forward and backward). Usage:
 *   node dist/scripts/gpu_parity.js [--modes webasm,headlessgl] [--seeds 5]   (headlessgl: under xvfb-run -a)
 */
import { closeGpu, type BackendName } from '../src/backends/backend.js';
import { GPU_OPS, parity } from '../test/gpu/parity.js';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : fallback; };
const modes = opt('modes', 'webasm').split(',');
const seeds = Number(opt('seeds', '5'));

const rows: string[][] = [];
for (const op of GPU_OPS) {
  const row: string[] = [op];
  for (const mode of modes) {
    let abs = 0, rel = 0;
    for (let s = 1; s <= seeds; s++) {
      const r = await parity(op, s, `gpu:${mode}` as BackendName);
      abs = Math.max(abs, r.maxAbs);
      rel = Math.max(rel, r.maxRel);
    }
    row.push(`${abs.toExponential(1)} / ${rel.toExponential(1)}`);
  }
  rows.push(row);
  console.error(row.join('  '));
}
closeGpu();
console.log(`| op | ${modes.map((m) => `${m} (abs / rel)`).join(' | ')} |`);
console.log(`|---|${modes.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
