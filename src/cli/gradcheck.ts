/**
 * `facenet gradcheck --op NAME`: runs gradcheck on randomized shapes of one op (or `all`) and prints a
 * table of the worst element per input. Exit 0 when every check is within tolerance, 1 otherwise.
 */
import { gradcheck, type GradcheckReport } from '../autograd/gradcheck.js';
import { GRADCHECK_OP_NAMES, makeCase } from '../autograd/cases.js';
import { formatHelp, numberOption, parseArgs, UsageError, type OptionSpec } from './args.js';

const SPEC: Record<string, OptionSpec> = {
  op: { type: 'string', description: `op name, comma-separated names, or "all" (see --list)` },
  seed: { type: 'string', description: 'first random seed (default 1)' },
  trials: { type: 'string', description: 'random shapes per op: seeds seed .. seed+trials-1 (default 3)' },
  eps: { type: 'string', description: 'finite-difference step (default 1e-5)' },
  rtol: { type: 'string', description: 'relative tolerance (default 1e-6)' },
  atol: { type: 'string', description: 'absolute tolerance (default 1e-8)' },
  json: { type: 'boolean', description: 'one JSON object per check instead of the table' },
  list: { type: 'boolean', description: 'list the op names and exit' },
  help: { type: 'boolean', description: 'show this help' },
};

export const GRADCHECK_HELP = formatHelp(
  'Usage: facenet gradcheck --op NAME [--seed N] [--trials N] [--eps E] [--rtol R] [--atol A] [--json]',
  'Compares autograd gradients with float64 central differences on random shapes.\nExit code 0: all within tolerance; 1: some check failed.',
  SPEC,
);

interface Row { op: string; seed: number; description: string; report: GradcheckReport }

export function runGradcheckCommand(argv: readonly string[], out: (line: string) => void): number {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(GRADCHECK_HELP); return 0; }
  if (args.options.list) { out(GRADCHECK_OP_NAMES.join('\n')); return 0; }
  const opArg = args.options.op;
  if (typeof opArg !== 'string') throw new UsageError('gradcheck needs --op NAME (or --op all); --list shows the names');
  const names = opArg === 'all' ? GRADCHECK_OP_NAMES : opArg.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => !GRADCHECK_OP_NAMES.includes(n));
  if (unknown.length > 0) throw new UsageError(`unknown op ${unknown.join(', ')}; known: ${GRADCHECK_OP_NAMES.join(', ')}`);
  const seed0 = numberOption(args, 'seed', 1, Number.isInteger);
  const trials = numberOption(args, 'trials', 3, (v) => Number.isInteger(v) && v >= 1);
  const tolerances = {
    eps: numberOption(args, 'eps', 1e-5, (v) => v > 0),
    rtol: numberOption(args, 'rtol', 1e-6, (v) => v >= 0),
    atol: numberOption(args, 'atol', 1e-8, (v) => v >= 0),
  };
  const rows: Row[] = [];
  for (const op of names) {
    for (let seed = seed0; seed < seed0 + trials; seed++) {
      const c = makeCase(op, seed)!;
      const report = gradcheck(c.fn, c.inputs, { ...tolerances, names: c.names });
      rows.push({ op, seed, description: c.description, report });
      if (args.options.json) out(JSON.stringify({ op, seed, shapes: c.description, ...tolerances, ...report }));
    }
  }
  if (!args.options.json) printTable(rows, tolerances, out);
  return rows.every((r) => r.report.ok) ? 0 : 1;
}

function printTable(rows: Row[], tol: { eps: number; rtol: number; atol: number }, out: (line: string) => void): void {
  const e = (v: number): string => v.toExponential(2);
  out(`gradcheck: float64 central differences, eps ${tol.eps.toExponential()}, pass if abs <= ${tol.atol.toExponential()} or rel <= ${tol.rtol.toExponential()}`);
  out(`${'op'.padEnd(20)} ${'seed'.padStart(4)}  ${'input'.padEnd(8)} ${'shape'.padEnd(14)} ${'max rel'.padStart(9)} ${'max abs'.padStart(9)}  ok`);
  for (const r of rows) {
    out(`${r.op.padEnd(20)} ${String(r.seed).padStart(4)}  ${r.description}`);
    for (const i of r.report.inputs) {
      out(`${''.padEnd(20)} ${''.padStart(4)}  ${i.name.padEnd(8)} ${`[${i.shape.join(',')}]`.padEnd(14)} ${e(i.relError).padStart(9)} ${e(i.absError).padStart(9)}  ${i.ok ? 'ok' : 'FAIL'}`);
    }
  }
  const failed = rows.filter((r) => !r.report.ok);
  const worst = Math.max(...rows.map((r) => r.report.maxRelError));
  out(`${rows.length - failed.length} passed, ${failed.length} failed; worst relative error ${e(worst)}`);
}
