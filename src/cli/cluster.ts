/**
 * `facenet cluster DIR`: groups the photos of a folder (recursively) by person with DBSCAN at the model
 * threshold, on the largest face of each photo: {"clusters": [[file, ...], ...], "noise": [...]}, plus
 * "no_face" and "errors" for files that could not take part.
 */
import { dbscan } from '../face/evaluate.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { checkInputFolder, errorRecord, FACE_OPTIONS, pipelineFrom, progress, readingAhead, type Out } from './common.js';
import { listImages } from './files.js';

const SPEC: Record<string, OptionSpec> = {
  ...FACE_OPTIONS,
  threshold: { type: 'string', description: 'distance within which two faces are neighbours (default: the model threshold)' },
};
export const CLUSTER_HELP = formatHelp('Usage: facenet cluster DIR [--threshold T]', 'Groups the photos of a folder by person (DBSCAN, min 2 photos per cluster).', SPEC);

export async function runCluster(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(CLUSTER_HELP); return 0; }
  if (args.positionals.length !== 1) throw new UsageError('cluster needs one folder');
  const dir = args.positionals[0]!;
  checkInputFolder('cluster: the folder', dir);
  const pipeline = await pipelineFrom(args, err);
  const threshold = args.options.threshold === undefined ? pipeline.spec.threshold : Number(args.options.threshold);
  if (!Number.isFinite(threshold) || threshold <= 0) throw new UsageError(`--threshold must be a positive number, got ${String(args.options.threshold)}`);
  const listing = listImages(dir, { recursive: true });
  const errors = listing.problems.map((p) => ({ file: p.path, error: { code: 'UNREADABLE', message: p.message } }));
  const files: string[] = [], embeddings: Float32Array[] = [], noFace: string[] = [];
  const tick = progress(args, listing.files.length);
  await readingAhead(pipeline, listing.files, async () => {
    for (const [i, file] of listing.files.entries()) {
      try {
        const faces = await pipeline.embed(file, { pick: 'largest' });
        if (faces[0]) { files.push(file); embeddings.push(faces[0].embedding); } else noFace.push(file);
      } catch (e) {
        errors.push(errorRecord(file, e));
      }
      tick(i + 1, file);
    }
  });
  const { clusters, noise } = dbscan(files.length, (i, j) => pipeline.distance(embeddings[i]!, embeddings[j]!), threshold);
  out(JSON.stringify({
    clusters: clusters.map((c) => c.map((i) => files[i]!)),
    noise: noise.map((i) => files[i]!),
    no_face: noFace, errors, threshold, model: pipeline.model, backend: pipeline.backend,
  }));
  return errors.length > 0 ? 2 : 0;
}
