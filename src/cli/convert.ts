/** `facenet convert <src> --format F --arch A [--variant V] --out FILE [--allow-missing]`. */
import { convertWeights, SOURCE_FORMATS, type SourceFormat } from '../io/convert/index.js';
import { ARCHITECTURES } from '../models/factory.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import { checkOutputFile, type Out } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  format: { type: 'string', description: `source format: ${SOURCE_FORMATS.join(', ')}` },
  arch: { type: 'string', description: `architecture: ${ARCHITECTURES.join(', ')}` },
  variant: { type: 'string', description: 'architecture variant (nn4.small2: torch or keras)' },
  out: { type: 'string', description: 'the .safetensors file to write' },
  'allow-missing': { type: 'boolean', description: 'write an incomplete model for inspection (it will refuse to run)' },
  source: { type: 'string', description: 'provenance to record in the metadata (default: the source path)' },
  license: { type: 'string', description: 'license to record in the metadata' },
  help: { type: 'boolean', description: 'show this help' },
};
export const CONVERT_HELP = formatHelp('Usage: facenet convert <src> --format FORMAT --arch ARCH [--variant V] --out FILE.safetensors', 'Converts weights (Keras-OpenFace CSV dir, PyTorch .pt, TF.js manifest) to one safetensors file.', SPEC);

export async function runConvert(argv: readonly string[], out: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(CONVERT_HELP); return 0; }
  const [src, ...extra] = args.positionals;
  const format = args.options.format as string | undefined, arch = args.options.arch as string | undefined, file = args.options.out as string | undefined;
  if (!src || extra.length > 0) throw new UsageError('convert needs exactly one source path');
  if (!format || !(SOURCE_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${SOURCE_FORMATS.join(', ')}`);
  if (!arch) throw new UsageError('convert needs --arch');
  if (!file) throw new UsageError('convert needs --out FILE.safetensors');
  checkOutputFile('--out', file);
  const report = convertWeights({
    src, format: format as SourceFormat, arch, variant: args.options.variant as string | undefined, out: file,
    allowMissing: Boolean(args.options['allow-missing']), source: args.options.source as string | undefined, license: args.options.license as string | undefined,
  });
  out(JSON.stringify(report));
  return 0;
}
