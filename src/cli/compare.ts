/**
 * `facenet compare <a> <b>`: {"distance", "metric", "threshold", "same", "model"} for the largest face of
 * each image; exit 0 on a decision. An image without a face: exit 3 and {"error": {"code": "NO_FACE", "file"}}.
 * An unreadable image: exit 2 and {"file", "error": {"code", "message"}}.
 */
import { NoFaceError } from '../face/pipeline.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { errorRecord, FACE_OPTIONS, pipelineFrom, readingAhead, round, type Out } from './common.js';

const SPEC: Record<string, OptionSpec> = { ...FACE_OPTIONS };
export const COMPARE_HELP = formatHelp('Usage: facenet compare <a> <b> [--model ID|FILE]', 'Decides whether two photos show the same person (largest face of each).', SPEC);

export async function runCompare(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(COMPARE_HELP); return 0; }
  if (args.positionals.length !== 2) throw new UsageError(`compare needs exactly two images, got ${args.positionals.length}`);
  const [a, b] = args.positionals as [string, string];
  const pipeline = await pipelineFrom(args, err);
  try {
    const r = await readingAhead(pipeline, [a, b], () => pipeline.compare(a, b));
    out(JSON.stringify({ distance: round(r.distance), metric: r.metric, threshold: r.threshold, same: r.same, model: r.model, backend: pipeline.backend }));
    return 0;
  } catch (e) {
    if (e instanceof NoFaceError) {
      out(JSON.stringify({ error: { code: 'NO_FACE', file: e.file, message: e.message } }));
      return 3;
    }
    const file = (e as { file?: string }).file ?? `${a} / ${b}`;
    out(JSON.stringify(errorRecord(file, e)));
    return 2;
  }
}
