/** `facenet bench`: the rows' JSON contract and usage errors (speed itself is never asserted in tests). */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers.js';

const run = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, [CLI, 'bench', ...args], { encoding: 'utf8', env: { ...process.env, FACENET_THREADS: '2' } });

describe('facenet bench (CLI)', function () {
  this.timeout(120000);
  it('--json prints one row per backend/threads with the documented keys; --train adds the training rows (1 and all threads)', () => {
    const r = run('--model', 'nn4.small2', '--batches', '2', '--runs', '1', '--train', '--json');
    expect(r.status, r.stderr).to.equal(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((x) => [x.backend, x.threads, x.batch])).to.deep.equal([['facenet-cpu', 1, 2], ['facenet-cpu', 2, 2], ['facenet-cpu-train', 1, 16], ['facenet-cpu-train', 2, 16]]);
    for (const row of rows) {
      expect(Object.keys(row)).to.deep.equal(['model', 'batch', 'backend', 'threads', 'ms_per_image', 'img_per_s', 'gflops', 'runs']);
      expect(row.model).to.equal('nn4.small2');
      const ms = row.ms_per_image as number, ips = row.img_per_s as number;
      expect(ms * ips).to.be.closeTo(1000, 1e-6); // ms/image and images/s describe the same median
      expect(row.gflops as number).to.be.greaterThan(0);
    }
  });
  it('the table has a header and aligned rows, after a first line naming the machine and the GEMM kernel', () => {
    const r = run('--model', 'nn4.small2', '--batches', '1', '--runs', '1');
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^facenet-ts benchmark: .+ x \d+ cores, Node v\d+\.\d+\.\d+, \d{4}-\d\d-\d\d, GEMM: WebAssembly SIMD(, fused multiply-add)?$/);
    expect(lines[1]).to.match(/^model +batch +backend +threads +ms\/image +images\/s +GFLOP\/s +runs$/);
    expect(lines.slice(2).every((l) => l.length === lines[1]!.length)).to.equal(true);
  });
  it('--train in the table: the training rows, each followed by the step/inference ratio timed alternately', () => {
    const r = run('--model', 'nn4.small2', '--batches', '1', '--runs', '1', '--backends', 'facenet-cpu', '--train');
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    const ratios = lines.filter((l) => l.includes('timed alternately'));
    expect(ratios.map((l) => l.match(/on (\d) threads?/)?.[1])).to.deep.equal(['1', '2']);
    for (const l of ratios) expect(l).to.match(/\(nn4\.small2: training step \/ inference of batch 16 on \d threads?, timed alternately: \d+\.\d\dx\)$/);
    expect(lines.filter((l) => l.includes('facenet-cpu-train'))).to.have.length(2);
  });
  it('unknown models, bad batches and unknown backends are usage errors (exit 2)', () => {
    for (const args of [['--model', 'foo'], ['--batches', '0'], ['--backends', 'tfjs-cpu'], ['--runs', 'x']]) {
      const r = run(...args);
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(/USAGE/);
    }
  });
});
