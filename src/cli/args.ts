/**
 * A small argument parser: `--name value`, `--name=value`, boolean `--flag`, and positionals; after `--`
 * everything is a positional (a file named `--x.jpg`). Unknown options are an error (a typo must not be
 * silently ignored).
 */
import { FacenetError } from '../errors.js';

export class UsageError extends FacenetError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export interface OptionSpec {
  /** 'string' takes a value; 'boolean' is a flag. */
  type: 'string' | 'boolean';
  description: string;
}

export interface ParsedArgs {
  options: Record<string, string | boolean>;
  positionals: string[];
}

export function parseArgs(argv: readonly string[], spec: Record<string, OptionSpec>): ParsedArgs {
  const options: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name} (see --help)`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} is a flag and takes no value`);
      options[name] = true;
    } else {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      options[name] = value;
    }
  }
  return { options, positionals };
}

export function numberOption(args: ParsedArgs, name: string, fallback: number, check: (v: number) => boolean = Number.isFinite): number {
  const raw = args.options[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !check(v)) throw new UsageError(`--${name}: invalid value ${JSON.stringify(raw)}`);
  return v;
}

export function formatHelp(usage: string, summary: string, spec: Record<string, OptionSpec>): string {
  const rows = Object.entries(spec).map(([name, s]) => `  --${(name + (s.type === 'string' ? ' <value>' : '')).padEnd(20)} ${s.description}`);
  return `${usage}\n\n${summary}\n\nOptions:\n${rows.join('\n')}\n`;
}
