import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers.js';

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('facenet gradcheck (CLI)', () => {
  it('prints a table and exits 0 within tolerance', () => {
    const r = run('gradcheck', '--op', 'conv2d', '--trials', '2');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/op\s+seed\s+input\s+shape\s+max rel\s+max abs\s+ok/);
    expect(r.stdout).to.match(/^\s+x\s+\[/m);
    expect(r.stdout).to.match(/2 passed, 0 failed/);
  });
  it('exits 1 when a check is outside the tolerance', () => {
    const r = run('gradcheck', '--op', 'lrn', '--rtol', '0', '--atol', '0', '--trials', '1');
    expect(r.status).to.equal(1);
    expect(r.stdout).to.match(/FAIL/);
  });
  it('--json prints one object per check', () => {
    const r = run('gradcheck', '--op', 'l2normalize,prelu', '--json', '--trials', '1');
    expect(r.status).to.equal(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { op: string; ok: boolean; maxRelError: number });
    expect(lines.map((l) => l.op)).to.deep.equal(['l2normalize', 'prelu']);
    expect(lines.every((l) => l.ok && l.maxRelError <= 1e-6)).to.equal(true);
  });
  it('unknown ops and options are usage errors (exit 2) that list what is accepted', () => {
    const r = run('gradcheck', '--op', 'nope');
    expect(r.status).to.equal(2);
    expect(r.stderr).to.match(/unknown op nope; known: conv2d, depthwise/);
    expect(run('gradcheck', '--bogus').stderr).to.match(/unknown option --bogus/);
    expect(run('gradcheck').stderr).to.match(/needs --op NAME/);
  });
  it('--list, --help, and the top-level help', () => {
    expect(run('gradcheck', '--list').stdout).to.match(/^batchnorm$/m);
    expect(run('gradcheck', '--help').stdout).to.match(/Usage: facenet gradcheck --op NAME/);
    expect(run('--help').stdout).to.match(/gradcheck\s+check an op's gradients/);
  });
});
