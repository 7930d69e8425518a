/**
 * What every face command shares: the model / detector options, one JSON record per line on stdout,
 * per-file error records that never stop a batch, a progress line on stderr for long runs, and the
 * exit-code contract (0 all processed, 2 some file failed or usage error, 3 compare without a face).
 */
import { FacenetError } from '../errors.js';
import { createPipeline, type FacePipeline, type Pick } from '../face/pipeline.js';
import { GPU_MODES } from '../backends/gpu/device.js';
import { getNumThreads, setNumThreads } from '../backends/cpu/threads.js';
import type { BackendName } from '../backends/backend.js';
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { numberOption, UsageError, type OptionSpec, type ParsedArgs } from './args.js';

export const FACE_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', description: 'registry id (see `facenet models`) or a .safetensors file (default dlib-resnet34)' },
  detector: { type: 'string', description: 'tiny (default; 68 landmarks) or mtcnn (5 landmarks)' },
  backend: { type: 'string', description: 'cpu (default), gpu (gpu.js: headlessgl if available, else webasm) or gpu:MODE' },
  'min-face': { type: 'string', description: 'smallest face side in pixels for MTCNN (default 20)' },
  'score-threshold': { type: 'string', description: 'detection score threshold of the tiny detector (default 0.5)' },
  from: { type: 'string', description: 'mirror directory of source weights (default FACENET_WEIGHTS_MIRROR)' },
  'max-pixels': { type: 'string', description: 'refuse images larger than this many pixels (default 50000000)' },
  'max-file-mb': { type: 'string', description: 'refuse image files larger than this many MB (default 100)' },
  'max-batch-mb': { type: 'string', description: 'most tensor memory for one embedding batch, in MB (default 1024); more faces go in chunks' },
  'timeout-ms': { type: 'string', description: 'per-image time budget; an image over it fails with code TIMEOUT' },
  json: { type: 'boolean', description: 'JSON output (the default for data; kept for scripts that pass it)' },
  progress: { type: 'boolean', description: 'show progress on stderr even when it is not a terminal' },
  help: { type: 'boolean', description: 'show this help' },
};

export const PICK_OPTION: Record<string, OptionSpec> = {
  pick: { type: 'string', description: 'largest | center | all faces per image' },
};

export type Out = (line: string) => void;

export async function pipelineFrom(args: ParsedArgs, log: Out): Promise<FacePipeline> {
  const backend = (args.options.backend as string | undefined) ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'gpu' && !GPU_MODES.some((m) => backend === `gpu:${m}`)) {
    throw new UsageError(`--backend must be cpu, gpu or gpu:MODE (MODE: ${GPU_MODES.join(', ')}), got ${backend}`);
  }
  const detector = (args.options.detector as string | undefined) ?? 'tiny';
  if (detector !== 'tiny' && detector !== 'mtcnn') throw new UsageError(`--detector must be tiny or mtcnn, got ${detector}`);
  return createPipeline({
    model: args.options.model as string | undefined,
    detector,
    minFaceSize: args.options['min-face'] === undefined ? undefined : numberOption(args, 'min-face', 20, (v) => v >= 4),
    scoreThreshold: args.options['score-threshold'] === undefined ? undefined : numberOption(args, 'score-threshold', 0.5, (v) => v > 0 && v < 1),
    from: args.options.from as string | undefined,
    limits: {
      ...(args.options['max-pixels'] === undefined ? {} : { maxPixels: numberOption(args, 'max-pixels', 5e7, (v) => v >= 1) }),
      ...(args.options['max-file-mb'] === undefined ? {} : { maxFileBytes: numberOption(args, 'max-file-mb', 100, (v) => v > 0) * 2 ** 20 }),
    },
    maxBatchBytes: args.options['max-batch-mb'] === undefined ? undefined : numberOption(args, 'max-batch-mb', 1024, (v) => v > 0) * 2 ** 20,
    timeoutMs: args.options['timeout-ms'] === undefined ? undefined : numberOption(args, 'timeout-ms', 0, (v) => v > 0),
    backend: backend as BackendName,
    log: (line) => log(line),
  });
}

/**
 * Runs `work`, which goes through `files` with the pipeline, while the pipeline decodes them ahead on a
 * worker thread (see FacePipeline.readAhead). That worker takes one of the threads (FACENET_THREADS) from
 * the networks, even for a single file: a photo's networks run at batch 1, where a second thread gains
 * less than decoding the next photo meanwhile, and a worker started for a one-shot command costs more
 * than it saves. Measured on 2 cores (npm run bench:pipeline): 161 ms a photo on one thread, 156 on two,
 * 128 with one network thread and the read-ahead (152-154 with two network threads beside the reader, in
 * a first experiment); `facenet embed` of one photo 0.50 s with one network thread, 0.63 s with two.
 * FACENET_THREADS=1 keeps it all on this thread.
 */
export async function readingAhead<T>(pipeline: FacePipeline, files: readonly string[], work: () => Promise<T>): Promise<T> {
  const threads = getNumThreads();
  if (threads < 2) return work();
  setNumThreads(threads - 1);
  pipeline.readAhead(files);
  try {
    return await work();
  } finally {
    pipeline.readAhead([]);
    setNumThreads(threads);
  }
}

export function pickOption(args: ParsedArgs, fallback: Pick): Pick {
  const pick = (args.options.pick as string | undefined) ?? fallback;
  if (pick !== 'largest' && pick !== 'center' && pick !== 'all') throw new UsageError(`--pick must be largest, center or all, got ${pick}`);
  return pick;
}

export function errorRecord(file: string, err: unknown): { file: string; error: { code: string; message: string } } {
  const code = err instanceof FacenetError ? err.code : 'INTERNAL';
  return { file, error: { code, message: (err as Error).message } };
}

/** A "[n/total] name" progress line on stderr, rewritten in place on a terminal. */
export function progress(args: ParsedArgs, total: number): (done: number, name: string) => void {
  const tty = process.stderr.isTTY === true;
  if ((!tty && !args.options.progress) || total < 2) return () => undefined;
  return (done, name) => {
    const line = `[${done}/${total}] ${name}`;
    if (tty) process.stderr.write(`\r\x1b[K${line}${done === total ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  };
}

export const round = (v: number, digits = 6): number => Number(v.toFixed(digits));

/** Refuses a folder argument that is missing or not a folder, before the models load. */
export function checkInputFolder(what: string, dir: string): void {
  const s = statSync(dir, { throwIfNoEntry: false });
  if (!s) throw new UsageError(`${what} ${dir} does not exist`);
  if (!s.isDirectory()) throw new UsageError(`${what} ${dir} is a file; give a folder (one image per file inside)`);
}

/**
 * Refuses an output file that cannot be written before any work is done (a long run would otherwise end in
 * a failed write): its folder must exist, and it must not be a folder itself.
 */
export function checkOutputFile(option: string, file: string): void {
  const folder = dirname(resolve(file));
  if (!statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${option} ${file}: the folder ${folder} does not exist; create it first`);
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${option} ${file} is a folder; give the name of a file to write`);
}
