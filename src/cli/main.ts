#!/usr/bin/env node
/**
 * The `facenet` command. Each subcommand lives in its own file; this one dispatches and turns errors
 * into one clear line on stderr (the stack only with --debug). Exit codes: 0 ok, 1 a check failed
 * (gradcheck), 2 usage error or some input failed, 3 compare found no face.
 */
import { readFileSync } from 'node:fs';
import { FacenetError } from '../errors.js';
import { runGradcheckCommand } from './gradcheck.js';
import { runEmbed } from './embed.js';
import { runCompare } from './compare.js';
import { runIdentify } from './identify.js';
import { runCluster } from './cluster.js';
import { runEvalPairs } from './eval_pairs.js';
import { runModels } from './models.js';
import { runConvert } from './convert.js';
import { runTrain } from './train.js';
import { runBench } from './bench.js';

type Out = (line: string) => void;
type Command = { summary: string; run: (argv: readonly string[], out: Out, err: Out) => number | Promise<number> };

const COMMANDS: Record<string, Command> = {
  embed: { summary: 'detect, align and embed the faces of images (JSON lines)', run: runEmbed },
  compare: { summary: 'decide whether two photos show the same person', run: runCompare },
  identify: { summary: 'name faces from a gallery folder (one sub-folder per person)', run: runIdentify },
  cluster: { summary: 'group the photos of a folder by person', run: runCluster },
  'eval-pairs': { summary: 'pair verification accuracy, best threshold, 10-fold accuracy, AUC', run: runEvalPairs },
  models: { summary: 'list the model registry; `models fetch <id>` downloads, verifies, converts', run: runModels },
  convert: { summary: 'convert CSV / .pt / TF.js weights to safetensors', run: (argv, out) => runConvert(argv, out) },
  train: { summary: 'train an embedding on aligned face crops (triplet / SphereFace / ArcFace / CosFace)', run: runTrain },
  gradcheck: { summary: "check an op's gradients against finite differences", run: (argv, out) => runGradcheckCommand(argv, out) },
  bench: { summary: 'time the networks on our CPU (and GPU) backends: ms/image, images/s, GFLOP/s', run: runBench },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function mainHelp(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `Usage: facenet <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'facenet <command> --help' for a command's options. --debug shows stack traces.\n`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const cut = argv.indexOf('--'), end = cut < 0 ? argv.length : cut; // after `--`, a '--debug' is a file name
  const debug = argv.slice(0, end).includes('--debug');
  const args = argv.filter((a, i) => i >= end || a !== '--debug');
  const [command, ...rest] = args;
  const out: Out = (line) => { process.stdout.write(line + '\n'); };
  const err: Out = (line) => { process.stderr.write(line + '\n'); };
  try {
    if (command === undefined || command === '--help' || command === 'help') { out(mainHelp()); return command === undefined ? 2 : 0; }
    if (command === '--version') { out(version()); return 0; }
    const c = COMMANDS[command];
    if (!c) { err(`facenet: unknown command '${command}'\n${mainHelp()}`); return 2; }
    return await c.run(rest, out, err);
  } catch (e) {
    if (debug) err(`${(e as Error).stack}`);
    const code = e instanceof FacenetError ? e.code : 'INTERNAL';
    err(`facenet: ${code}: ${(e as Error).message}${debug || e instanceof FacenetError ? '' : ' (rerun with --debug for the stack trace)'}`);
    return 2;
  }
}

// A reader that stops early (`facenet embed *.jpg | head -1`) closes the pipe: stop quietly, as command-line
// tools do, rather than with an unhandled EPIPE and its stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
