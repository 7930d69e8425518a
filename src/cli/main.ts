#!/usr/bin/env node
/**
 * The `facenet` command. Each subcommand lives in its own file; this one dispatches and turns errors
 * into one clear line on stderr (the stack only with --debug). Exit codes: 0 ok, 1 check failed,
 * 2 usage or input error.
 */
import { readFileSync } from 'node:fs';
import { FacenetError } from '../errors.js';
import { runGradcheckCommand } from './gradcheck.js';

const COMMANDS: Record<string, { summary: string; run: (argv: readonly string[], out: (line: string) => void) => number }> = {
  gradcheck: { summary: 'check an op\'s gradients against finite differences', run: runGradcheckCommand },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function mainHelp(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `Usage: facenet <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'facenet <command> --help' for a command's options.\n`;
}

export function main(argv: readonly string[]): number {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  const out = (line: string): void => { process.stdout.write(line + '\n'); };
  try {
    if (command === undefined || command === '--help' || command === 'help') { out(mainHelp()); return command === undefined ? 2 : 0; }
    if (command === '--version') { out(version()); return 0; }
    const c = COMMANDS[command];
    if (!c) { process.stderr.write(`facenet: unknown command '${command}'\n${mainHelp()}`); return 2; }
    return c.run(rest, out);
  } catch (err) {
    if (debug) process.stderr.write(`${(err as Error).stack}\n`);
    const code = err instanceof FacenetError ? err.code : 'INTERNAL';
    process.stderr.write(`facenet: ${code}: ${(err as Error).message}\n`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
