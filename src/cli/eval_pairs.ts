/**
 * `facenet eval-pairs PAIRS.csv --root DIR`: pair verification. PAIRS.csv rows are `a,b,label` with
 * paths relative to DIR (or absolute) and label 1/0 (or same/different, true/false); blank lines, `#`
 * comments and a header are skipped. Prints {"pairs", "accuracy" (at the model threshold), "best_threshold",
 * "best_accuracy", "tenfold_accuracy", "tenfold_std", "auc", "skipped"}.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { accuracyAt, bestThreshold, rocAuc, tenFold, type ScoredPair } from '../face/evaluate.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { errorRecord, FACE_OPTIONS, pipelineFrom, progress, readingAhead, round, type Out } from './common.js';

const SPEC: Record<string, OptionSpec> = { ...FACE_OPTIONS, root: { type: 'string', description: 'folder the CSV paths are relative to (default: the CSV folder)' } };
export const EVAL_HELP = formatHelp('Usage: facenet eval-pairs PAIRS.csv [--root DIR]', 'Pair verification accuracy, best threshold, 10-fold accuracy and ROC AUC.', SPEC);

const LABELS: Record<string, boolean> = { 1: true, 0: false, same: true, different: false, true: true, false: false };

export function parsePairs(text: string, file: string): { a: string; b: string; same: boolean }[] {
  const pairs: { a: string; b: string; same: boolean }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const cells = line.split(',').map((c) => c.trim());
    const label = LABELS[(cells[2] ?? '').toLowerCase()];
    if (cells.length !== 3 || label === undefined) {
      if (i === 0 && pairs.length === 0) return; // header
      throw new UsageError(`${file}:${i + 1}: expected "a,b,label" with label 1/0, got ${JSON.stringify(line.slice(0, 80))}`);
    }
    pairs.push({ a: cells[0]!, b: cells[1]!, same: label });
  });
  return pairs;
}

export async function runEvalPairs(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(EVAL_HELP); return 0; }
  if (args.positionals.length !== 1) throw new UsageError('eval-pairs needs one PAIRS.csv');
  const csv = args.positionals[0]!;
  let text: string;
  try { text = readFileSync(csv, 'utf8'); } catch (e) { throw new UsageError(`cannot read ${csv}: ${(e as Error).message}`); }
  const pairs = parsePairs(text, csv);
  if (pairs.length === 0) throw new UsageError(`${csv} has no pairs`);
  const root = (args.options.root as string | undefined) ?? join(csv, '..');
  const pipeline = await pipelineFrom(args, err);
  const files = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const embeddings = new Map<string, Float32Array | string>();
  const tick = progress(args, files.length);
  const path = (f: string): string => resolve(root, f); // an absolute path stays as it is
  await readingAhead(pipeline, files.map(path), async () => {
    for (const [i, f] of files.entries()) {
      try {
        const faces = await pipeline.embed(path(f), { pick: 'largest' });
        embeddings.set(f, faces[0]?.embedding ?? 'NO_FACE');
      } catch (e) {
        embeddings.set(f, errorRecord(f, e).error.code);
      }
      tick(i + 1, f);
    }
  });
  const scored: ScoredPair[] = [];
  const skipped: { a: string; b: string; reason: string }[] = [];
  for (const p of pairs) {
    const ea = embeddings.get(p.a)!, eb = embeddings.get(p.b)!;
    if (typeof ea === 'string' || typeof eb === 'string') skipped.push({ a: p.a, b: p.b, reason: typeof ea === 'string' ? `${p.a}: ${ea}` : `${p.b}: ${eb as string}` });
    else scored.push({ distance: pipeline.distance(ea, eb), same: p.same });
  }
  if (scored.length === 0) {
    const reasons = [...new Set(skipped.map((p) => p.reason))];
    throw new UsageError(`no pair could be evaluated: ${reasons.slice(0, 3).join('; ')}${reasons.length > 3 ? `; and ${reasons.length - 3} more` : ''} (paths are relative to ${resolve(root)}; --root sets it)`);
  }
  const best = bestThreshold(scored);
  const folds = tenFold(scored);
  out(JSON.stringify({
    pairs: scored.length, accuracy: round(accuracyAt(scored, pipeline.spec.threshold), 4), threshold: pipeline.spec.threshold,
    best_threshold: round(best.threshold, 4), best_accuracy: round(best.accuracy, 4),
    tenfold_accuracy: round(folds.mean, 4), tenfold_std: round(folds.std, 4), auc: round(rocAuc(scored), 4),
    skipped, metric: pipeline.spec.metric, model: pipeline.model, backend: pipeline.backend,
  }));
  return 0;
}
