/**
 * `npm run bench -- --ops`: op-level throughput of the CPU backend on FaceNet-sized layers (median of runs after a
 * warm-up). Prints a table, or one JSON object per line with --json. Whole-model benchmarks against TF.js
 * join this harness with the models.
 */
import { conv2d, dense, noGrad, randn, sum, tidy } from '../src/index.js';

interface Case { name: string; flops: number; run: () => void }

function convCase(name: string, x: number[], w: number[], options: Parameters<typeof conv2d>[3], out: number[], grad = false): Case {
  const xt = randn(x, { seed: 1 }), wt = randn(w, { seed: 2 });
  const macs = out.reduce((a, b) => a * b, 1) * w[1]! * w[2]! * w[3]!;
  if (grad) wt.requiresGrad = true;
  return {
    name, flops: 2 * macs * (grad ? 3 : 1),
    run: () => tidy(() => { grad ? sum(conv2d(xt, wt, null, options)).backward() : noGrad(() => conv2d(xt, wt, null, options)); wt.zeroGrad(); }),
  };
}

const CASES: Case[] = [
  convCase('conv 7x7 s2 3->64 @96 (nn4 conv1)', [1, 3, 96, 96], [64, 3, 7, 7], { stride: 2, padding: 3 }, [1, 64, 48, 48]),
  convCase('conv 3x3 64->192 @24 (nn4 conv3)', [1, 64, 24, 24], [192, 64, 3, 3], { padding: 1 }, [1, 192, 24, 24]),
  convCase('conv 1x1 256->128 @12 (1x1 path)', [1, 256, 12, 12], [128, 256, 1, 1], {}, [1, 128, 12, 12]),
  convCase('depthwise 3x3 128 @28', [1, 128, 28, 28], [128, 1, 3, 3], { padding: 1, groups: 128 }, [1, 128, 28, 28]),
  convCase('conv 3x3 64->192 @24 fwd+bwd', [1, 64, 24, 24], [192, 64, 3, 3], { padding: 1 }, [1, 192, 24, 24], true),
  (() => {
    const x = randn([16, 736], { seed: 1 }), w = randn([128, 736], { seed: 2 });
    return { name: 'dense 736->128, batch 16', flops: 2 * 16 * 736 * 128, run: () => tidy(() => { noGrad(() => dense(x, w)); }) };
  })(),
];

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function runOpBench(): void {
const json = process.argv.includes('--json');
const runsArg = process.argv.indexOf('--runs');
const runs = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 7;
if (!json) console.log(`${'op'.padEnd(40)} ${'ms'.padStart(9)} ${'GFLOP/s'.padStart(8)}`);
for (const c of CASES) {
  c.run();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    c.run();
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  const gflops = c.flops / (ms * 1e6);
  if (json) console.log(JSON.stringify({ op: c.name, backend: 'facenet-cpu', threads: 1, ms, gflops }));
  else console.log(`${c.name.padEnd(40)} ${ms.toFixed(2).padStart(9)} ${gflops.toFixed(2).padStart(8)}`);
}
}
