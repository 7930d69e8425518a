/**
 * Determinism (bit-identical embeddings across runs and CPU thread counts) and a shortened soak run
 * (memory flat after warm-up; the full run is `npm run soak`).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARED, sharedPath } from '../shared.js';
import { tempDir } from '../tmp.js';
import { CLI } from '../helpers.js';

const tmp = tempDir('det');

describe('determinism and soak', function () {
  this.timeout(600000);
  it('the same images give bit-identical embeddings across runs and thread counts (1 vs 2)', function () {
    sharedPath(this, 'faces/bbt');
    const images = ['amy/amy1.png', 'raj/raj2.png', 'penny/penny3.png'].map((f) => join(SHARED, 'faces', 'bbt', f));
    const embed = (threads: string, name: string): Buffer => {
      const out = join(tmp, name);
      const r = spawnSync(process.execPath, [CLI, 'embed', '--format', 'npy', '--out', out, ...images], { encoding: 'utf8', env: { ...process.env, FACENET_THREADS: threads, FACENET_WEIGHTS_MIRROR: join(SHARED, 'weights') } });
      expect(r.status, r.stderr).to.equal(0);
      return readFileSync(out);
    };
    const a = embed('1', 'a.npy'), b = embed('2', 'b.npy'), c = embed('2', 'c.npy');
    expect(a.length).to.be.greaterThan(128 * 4 * 3);
    expect(b.equals(a), 'threads 1 vs 2').to.equal(true);
    expect(c.equals(b), 'run to run').to.equal(true);
  });
  it('soak (shortened): live tensors and RSS stay flat while embedding', function () {
    sharedPath(this, 'faces/bbt');
    const script = fileURLToPath(new URL('../../scripts/soak.js', import.meta.url));
    const r = spawnSync(process.execPath, ['--expose-gc', script, '--aligned', '320', '--full', '12'], { encoding: 'utf8', env: { ...process.env, FACENET_SHARED: SHARED } });
    expect(r.status, r.stderr).to.equal(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { live_tensors_first: number; live_tensors_last: number; rss_growth_mb: number; faces_found: number };
    console.log('      ', JSON.stringify(summary));
    expect(summary.live_tensors_last).to.equal(summary.live_tensors_first);
    expect(summary.rss_growth_mb, r.stdout).to.be.below(64); // the samples are printed when it fails
    expect(summary.faces_found).to.be.at.least(10);
  });
});
