/**
 * `facenet embed <image...>`: one JSON object per image,
 *   {"file", "faces": [{"box", "score", "landmarks", "embedding", "warnings"}], "model", "backend"}
 * --aligned embeds each whole image resized to the model input (no detection).
 * --format npy|jsonl --out FILE writes all embeddings to FILE (rows in output order); the records then
 * carry "row" instead of the vector.
 */
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { checkOutputFile, errorRecord, FACE_OPTIONS, pickOption, pipelineFrom, PICK_OPTION, progress, readingAhead, round, type Out } from './common.js';
import { writeFileAtomically } from '../util/node_builtin.js';

const SPEC: Record<string, OptionSpec> = {
  ...FACE_OPTIONS, ...PICK_OPTION,
  aligned: { type: 'boolean', description: 'the images are aligned crops: skip detection, embed the whole image' },
  format: { type: 'string', description: 'npy or jsonl: bulk export format for --out' },
  out: { type: 'string', description: 'write all embeddings to this file' },
};

export const EMBED_HELP = formatHelp('Usage: facenet embed <image...> [--aligned] [--pick all|largest|center] [--format npy|jsonl --out FILE]', 'Detects, aligns and embeds the faces of each image; one JSON line per image.', SPEC);

/** A .npy (format 1.0) file of float32 rows. */
export function encodeNpy(rows: Float32Array[], dim: number): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows.length}, ${dim}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(rows.length * dim * 4);
  rows.forEach((r, i) => Buffer.from(r.buffer, r.byteOffset, r.byteLength).copy(body, i * dim * 4));
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

export async function runEmbed(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(EMBED_HELP); return 0; }
  if (args.positionals.length === 0) throw new UsageError('embed needs at least one image');
  const format = args.options.format as string | undefined;
  const outFile = args.options.out as string | undefined;
  if ((format === undefined) !== (outFile === undefined)) throw new UsageError('--format and --out go together');
  if (format !== undefined && format !== 'npy' && format !== 'jsonl') throw new UsageError(`--format must be npy or jsonl, got ${format}`);
  if (outFile) checkOutputFile('--out', outFile);
  const pick = pickOption(args, 'all');
  const pipeline = await pipelineFrom(args, err);
  const rows: Float32Array[] = [];
  const exported: string[] = [];
  const tick = progress(args, args.positionals.length);
  let failed = 0;
  await readingAhead(pipeline, args.positionals, async () => {
    for (const [i, file] of args.positionals.entries()) {
      try {
        const faces = args.options.aligned
          ? [{ embedding: await pipeline.embedAligned(file) }]
          : await pipeline.embed(file, { pick });
        const records = faces.map((f) => {
          const { embedding, ...rest } = f as typeof f & { box?: number[]; score?: number; landmarks?: number[][] };
          const face: Record<string, unknown> = {};
          if (rest.box) Object.assign(face, { box: rest.box.map((v) => round(v, 2)), score: round(rest.score!, 4), landmarks: rest.landmarks!.map((p) => p.map((v) => round(v, 2))) });
          if ('warnings' in rest) face.warnings = rest.warnings;
          if (outFile) {
            face.row = rows.length;
            rows.push(embedding);
            if (format === 'jsonl') exported.push(JSON.stringify({ file, row: face.row, embedding: Array.from(embedding, (v) => round(v)) }));
          } else face.embedding = Array.from(embedding, (v) => round(v));
          return face;
        });
        out(JSON.stringify({ file, faces: records, model: pipeline.model, backend: pipeline.backend }));
      } catch (e) {
        failed++;
        out(JSON.stringify(errorRecord(file, e)));
      }
      tick(i + 1, file);
    }
  });
  if (outFile) writeFileAtomically(outFile, format === 'npy' ? encodeNpy(rows, pipeline.spec.embeddingDim) : exported.join('\n') + (exported.length ? '\n' : ''));
  return failed > 0 ? 2 : 0;
}
