/**
 * Paths the commands cannot use are refused before any work, with USAGE and exit 2: output files they
 * could not write (a long run must not end in a failed write; the writes themselves are atomic, see
 * test/io/weights.test.ts: WRITE_FAILED), and input folders that are missing or are files.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../helpers.js';
import { tempDir } from '../tmp.js';

const tmp = tempDir('out');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });

describe('paths the commands cannot use (CLI)', function () {
  this.timeout(60000);
  // The inputs need not exist: the output is checked first.
  const cases: [string, string[], RegExp][] = [
    ['embed --out in a missing folder', ['embed', '--format', 'npy', '--out', join(tmp, 'missing', 'e.npy'), 'photo.jpg'], /--out .*e\.npy: the folder .*missing does not exist/],
    ['embed --out naming a folder', ['embed', '--format', 'jsonl', '--out', tmp, 'photo.jpg'], /is a folder; give the name of a file/],
    ['convert --out in a missing folder', ['convert', 'w.pt', '--format', 'torch-pt', '--arch', 'mtcnn-pnet', '--out', join(tmp, 'missing', 'w.safetensors')], /the folder .*missing does not exist/],
    ['train --out under a file', ['train', '--data', tmp, '--out', join(tmp, 'a-file', 'checkpoints')], /--out .*: cannot create the checkpoint folder \(ENOTDIR\)/],
  ];
  before(() => writeFileSync(join(tmp, 'a-file'), 'not a folder'));
  for (const [what, args, message] of cases) {
    it(`${what}: USAGE before any work, exit 2, nothing written`, () => {
      const r = run(...args);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stdout).to.equal(''); // no record: nothing was processed
      expect(r.stderr).to.match(/^facenet: USAGE: /);
      expect(r.stderr).to.match(message);
      expect(readdirSync(tmp).sort()).to.deep.equal(['a-file']);
    });
  }
  for (const [what, args, message] of [
    ['cluster of a missing folder', ['cluster', join(tmp, 'missing')], /cluster: the folder .*missing does not exist/],
    ['cluster of a file', ['cluster', join(tmp, 'a-file')], /cluster: the folder .*a-file is a file; give a folder/],
    ['identify --gallery of a missing folder', ['identify', '--gallery', join(tmp, 'missing'), 'photo.jpg'], /--gallery .*missing does not exist/],
  ] as [string, string[], RegExp][]) {
    it(`${what}: USAGE before the models load, exit 2`, () => {
      const r = run(...args);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.match(/^facenet: USAGE: /);
      expect(r.stderr).to.match(message);
    });
  }
  it('embed --out in an existing folder is accepted (the run goes on to the images)', () => {
    mkdirSync(join(tmp, 'ok'), { recursive: true });
    const r = run('embed', '--format', 'npy', '--out', join(tmp, 'ok', 'e.npy'), join(tmp, 'no-such-photo.jpg'));
    expect(r.stderr).to.not.match(/USAGE/);
    expect(JSON.parse(r.stdout.trim()).error.code).to.equal('NOT_FOUND');
  });
});
