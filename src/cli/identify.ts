/**
 * `facenet identify --gallery DIR <image...>`: DIR holds one folder per identity. For every face of every
 * query image: {"file", "faces": [{"identity": name | null, "distance", "box"}]}; identity is the nearest
 * gallery face's folder when its distance is within the model threshold, else null. Gallery embeddings
 * are cached per model (FACENET_CACHE/galleries), reused while a file's size and mtime are unchanged.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cacheDir } from '../io/registry.js';
import { writeFileAtomically } from '../util/node_builtin.js';
import type { FacePipeline } from '../face/pipeline.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { checkInputFolder, errorRecord, FACE_OPTIONS, pickOption, pipelineFrom, PICK_OPTION, progress, readingAhead, round, type Out } from './common.js';
import { listGallery } from './files.js';
import type { ParsedArgs } from './args.js';

const SPEC: Record<string, OptionSpec> = {
  ...FACE_OPTIONS, ...PICK_OPTION,
  gallery: { type: 'string', description: 'folder with one sub-folder of photos per identity' },
  'no-cache': { type: 'boolean', description: 'do not read or write the gallery embedding cache' },
};
export const IDENTIFY_HELP = formatHelp('Usage: facenet identify --gallery DIR <image...> [--pick all|largest|center]', 'Names the faces of each image from a gallery of known people.', SPEC);

interface GalleryEntry { file: string; identity: string; size: number; mtimeMs: number; embedding: number[] | null; error?: string }

export async function buildGallery(pipeline: FacePipeline, dir: string, args: ParsedArgs, err: Out): Promise<GalleryEntry[]> {
  const { identities, problems } = listGallery(dir);
  for (const p of problems) err(`gallery: skipping ${p.path}: ${p.message}`);
  const cacheFile = join(cacheDir(), 'galleries', `${createHash('sha256').update(`${pipeline.model}\n${pipeline.detectorName}\n${resolve(dir)}`).digest('hex').slice(0, 24)}.json`);
  const useCache = !args.options['no-cache'];
  const previous = new Map<string, GalleryEntry>();
  if (useCache && existsSync(cacheFile)) {
    try {
      for (const e of JSON.parse(readFileSync(cacheFile, 'utf8')) as GalleryEntry[]) previous.set(e.file, e);
    } catch { /* a damaged cache is rebuilt */ }
  }
  const all = identities.flatMap((id) => id.files.map((file) => ({ file, identity: id.name })));
  const tick = progress(args, all.length);
  const entries: GalleryEntry[] = [];
  // An entry whose file is unchanged since the cache was written is reused; the others are embedded.
  const cached = all.map(({ file, identity }) => {
    const s = statSync(file), old = previous.get(file);
    return { size: s.size, mtimeMs: s.mtimeMs, old: old && old.size === s.size && old.mtimeMs === s.mtimeMs && old.identity === identity ? old : null };
  });
  await readingAhead(pipeline, all.filter((_, i) => !cached[i]!.old).map((g) => g.file), async () => {
    for (const [i, { file, identity }] of all.entries()) {
      const s = cached[i]!, old = s.old;
      if (old) entries.push(old);
      else {
        try {
          const faces = await pipeline.embed(file, { pick: 'largest' });
          entries.push({ file, identity, size: s.size, mtimeMs: s.mtimeMs, embedding: faces[0] ? Array.from(faces[0].embedding) : null, ...(faces[0] ? {} : { error: 'NO_FACE' }) });
        } catch (e) {
          entries.push({ file, identity, size: s.size, mtimeMs: s.mtimeMs, embedding: null, error: errorRecord(file, e).error.code });
        }
      }
      const last = entries[entries.length - 1]!;
      if (!last.embedding) err(`gallery: ${file}: ${last.error ?? 'no face'}; not used`);
      tick(i + 1, file);
    }
  });
  if (useCache) {
    mkdirSync(join(cacheDir(), 'galleries'), { recursive: true });
    writeFileAtomically(cacheFile, JSON.stringify(entries));
  }
  return entries;
}

export async function runIdentify(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(IDENTIFY_HELP); return 0; }
  const dir = args.options.gallery;
  if (typeof dir !== 'string') throw new UsageError('identify needs --gallery DIR');
  checkInputFolder('--gallery', dir);
  if (args.positionals.length === 0) throw new UsageError('identify needs at least one image');
  const pick = pickOption(args, 'all');
  const pipeline = await pipelineFrom(args, err);
  const gallery = (await buildGallery(pipeline, dir, args, err)).filter((e) => e.embedding);
  if (gallery.length === 0) throw new UsageError(`gallery ${dir} has no usable face (expected DIR/<identity>/<image files>)`);
  let failed = 0;
  await readingAhead(pipeline, args.positionals, async () => {
    for (const file of args.positionals) {
      try {
        const faces = await pipeline.embed(file, { pick });
        out(JSON.stringify({
          file,
          faces: faces.map((f) => {
            let best = { d: Infinity, identity: '' };
            for (const g of gallery) {
              const d = pipeline.distance(f.embedding, g.embedding!);
              if (d < best.d) best = { d, identity: g.identity };
            }
            return { identity: best.d <= pipeline.spec.threshold ? best.identity : null, distance: round(best.d), nearest: best.identity, box: f.box.map((v) => round(v, 2)) };
          }),
          model: pipeline.model, backend: pipeline.backend,
        }));
      } catch (e) {
        failed++;
        out(JSON.stringify(errorRecord(file, e)));
      }
    }
  });
  return failed > 0 ? 2 : 0;
}
