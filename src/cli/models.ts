/**
 * `facenet models`: the registry with each model's cache state.
 * `facenet models fetch <id> [--from DIR] [--force] [--trust-unpinned]`: obtain, verify and convert.
 */
import { fetchModel, listModels } from '../io/registry.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';
import type { Out } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  from: { type: 'string', description: 'mirror directory of source weights (one folder per source, like shared/weights)' },
  force: { type: 'boolean', description: 'fetch and convert again even when cached' },
  'trust-unpinned': { type: 'boolean', description: 'accept source files whose sha256 the registry does not pin' },
  json: { type: 'boolean', description: 'one JSON object per model' },
  help: { type: 'boolean', description: 'show this help' },
};
export const MODELS_HELP = formatHelp('Usage: facenet models [--json]\n       facenet models fetch <id> [--from DIR] [--force] [--trust-unpinned]', 'Lists the model registry and fetches models into the cache (FACENET_CACHE).', SPEC);

export async function runModels(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(MODELS_HELP); return 0; }
  const [sub, id, ...extra] = args.positionals;
  if (sub === undefined) {
    const rows = listModels();
    if (args.options.json) {
      for (const m of rows) out(JSON.stringify({ id: m.id, architecture: m.entry.architecture, task: m.entry.task, cached: m.cached, path: m.path, bytes: m.bytes, license: m.entry.license, sources: m.entry.sources.map((s) => s.package ?? s.folder ?? s.base) }));
      return 0;
    }
    out(`${'id'.padEnd(20)} ${'task'.padEnd(10)} ${'architecture'.padEnd(20)} ${'cached'.padEnd(7)} sources`);
    for (const m of rows) {
      const sources = m.entry.sources.map((s) => (s.kind === 'npm' ? `npm ${s.package}` : s.kind === 'mirror' ? `mirror ${s.folder}/` : 'url')).join(', ');
      out(`${m.id.padEnd(20)} ${m.entry.task.padEnd(10)} ${m.entry.architecture.padEnd(20)} ${(m.cached ? 'yes' : 'no').padEnd(7)} ${sources}`);
    }
    return 0;
  }
  if (sub !== 'fetch') throw new UsageError(`unknown models subcommand '${sub}' (expected: fetch)`);
  if (!id || extra.length > 0) throw new UsageError('models fetch needs exactly one model id');
  const path = fetchModel(id, { from: args.options.from as string | undefined, force: Boolean(args.options.force), trustUnpinned: Boolean(args.options['trust-unpinned']), log: err });
  out(JSON.stringify({ id, path, cached: true }));
  return 0;
}
