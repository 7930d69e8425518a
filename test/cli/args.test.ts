/** The CLI's argument parser: options, values, flags, positionals, and `--` ending the options. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { parseArgs, UsageError, type OptionSpec } from '../../src/cli/args.js';
import { CLI } from '../helpers.js';

const SPEC: Record<string, OptionSpec> = { out: { type: 'string', description: '' }, aligned: { type: 'boolean', description: '' } };

describe('CLI arguments', () => {
  it('--name value, --name=value, flags and positionals in any order', () => {
    expect(parseArgs(['a.jpg', '--out', 'x.npy', '--aligned', 'b.jpg'], SPEC)).to.deep.equal({ options: { out: 'x.npy', aligned: true }, positionals: ['a.jpg', 'b.jpg'] });
    expect(parseArgs(['--out=x=y.npy', '-single-dash.jpg'], SPEC)).to.deep.equal({ options: { out: 'x=y.npy' }, positionals: ['-single-dash.jpg'] });
  });
  it('after `--` everything is a positional, names that look like options included', () => {
    expect(parseArgs(['--aligned', '--', '--out', '--aligned', '--', 'a.jpg'], SPEC)).to.deep.equal({ options: { aligned: true }, positionals: ['--out', '--aligned', '--', 'a.jpg'] });
  });
  it('unknown options, a flag given a value and an option without one are USAGE errors', () => {
    expect(() => parseArgs(['--outt', 'x'], SPEC)).to.throw(UsageError, /unknown option --outt/);
    expect(() => parseArgs(['--aligned=yes'], SPEC)).to.throw(UsageError, /is a flag and takes no value/);
    expect(() => parseArgs(['--out'], SPEC)).to.throw(UsageError, /--out needs a value/);
  });
  it('the command: a file named --debug after `--` is a file, not the flag', () => {
    const r = spawnSync(process.execPath, [CLI, 'embed', '--', '--debug'], { encoding: 'utf8' });
    expect(r.status).to.equal(2);
    expect(JSON.parse(r.stdout.trim())).to.deep.include({ file: '--debug' });
    expect(JSON.parse(r.stdout.trim()).error.code).to.equal('NOT_FOUND');
  });
});
