/**
 * `facenet bench`: how fast the networks run here, on our backends: the CPU (1 thread and all threads)
 * and, with --backends facenet-gpu, every gpu.js mode that opens. Same table and JSON lines as
 * `npm run bench`, which adds TF.js's backends for comparison (a checkout with devDependencies).
 *   facenet bench [--model nn4.small2,...] [--batches 1,16] [--runs 5] [--backends facenet-cpu,facenet-gpu] [--train] [--json]
 */
import { getNumThreads, setNumThreads, shutdownThreads } from '../backends/cpu/threads.js';
import { closeGpu } from '../backends/backend.js';
import {
  availableGpuModes, benchInference, benchModel, benchTraining, BENCH_MODELS, formatHeader, formatRow, machineLine,
  softwareGl, SOFTWARE_GL_NOTE, type BenchRow,
} from '../util/benchmark.js';
import { formatHelp, numberOption, parseArgs, UsageError, type OptionSpec } from './args.js';
import type { Out } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  model: { type: 'string', description: `comma-separated models (default all: ${Object.keys(BENCH_MODELS).join(', ')})` },
  batches: { type: 'string', description: 'comma-separated batch sizes (default 1,16)' },
  runs: { type: 'string', description: 'timed runs per row after a warm-up; the median is reported (default 5)' },
  backends: { type: 'string', description: 'facenet-cpu and/or facenet-gpu (default facenet-cpu)' },
  train: { type: 'boolean', description: 'also time a training step (batch 16) per image' },
  json: { type: 'boolean', description: 'one JSON object per row: {"model", "batch", "backend", "threads", "ms_per_image", "img_per_s", "gflops", "runs"}' },
  help: { type: 'boolean', description: 'show this help' },
};

export const BENCH_HELP = formatHelp('Usage: facenet bench [--model M,...] [--batches 1,16] [--runs 5] [--backends facenet-cpu,facenet-gpu] [--train] [--json]',
  'Times whole-model inference (median of the runs, per image: ms, images/s, GFLOP/s) on our backends.', SPEC);

function list(value: unknown, fallback: string): string[] {
  return String(value ?? fallback).split(',').map((v) => v.trim()).filter((v) => v !== '');
}

export async function runBench(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(BENCH_HELP); return 0; }
  if (args.positionals.length > 0) throw new UsageError(`bench takes no positional arguments (got ${args.positionals.join(' ')})`);
  const models = list(args.options.model, Object.keys(BENCH_MODELS).join(','));
  for (const m of models) if (!BENCH_MODELS[m]) throw new UsageError(`--model: unknown model '${m}' (known: ${Object.keys(BENCH_MODELS).join(', ')})`);
  const batches = list(args.options.batches, '1,16').map(Number);
  if (batches.some((b) => !Number.isInteger(b) || b < 1 || b > 256)) throw new UsageError(`--batches: positive integers up to 256, got ${String(args.options.batches)}`);
  const backends = list(args.options.backends, 'facenet-cpu');
  for (const b of backends) if (b !== 'facenet-cpu' && b !== 'facenet-gpu') throw new UsageError(`--backends: facenet-cpu and/or facenet-gpu, got '${b}'`);
  const runs = numberOption(args, 'runs', 5, (v) => Number.isInteger(v) && v >= 1 && v <= 100);
  const json = Boolean(args.options.json);
  const report = (r: BenchRow): void => out(json ? JSON.stringify(r) : formatRow(r));

  const maxThreads = Math.max(1, getNumThreads());
  const threads = backends.includes('facenet-cpu') ? [...new Set([1, maxThreads])] : [];
  const gpuModes = backends.includes('facenet-gpu') ? await availableGpuModes(err) : [];
  if (!json) {
    out(machineLine());
    out(formatHeader());
  }
  try {
    for (const name of models) {
      err(`bench: ${name}`);
      const m = benchModel(name);
      for (const batch of batches) await benchInference(m, batch, { runs, threads, gpuModes }, report);
      setNumThreads(maxThreads);
      if (args.options.train && name !== 'mobilefacenet') await benchTraining(m, maxThreads, runs, report, json ? undefined : out);
    }
  } finally {
    closeGpu();
    shutdownThreads();
  }
  if (!json && gpuModes.includes('headlessgl') && softwareGl()) out(SOFTWARE_GL_NOTE);
  return 0;
}
