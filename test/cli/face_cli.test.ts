/** The face commands end to end, as a user runs them: exact JSON shapes, exit codes, per-file errors. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng } from '../fixtures/images.js';
import { SHARED, sharedPath } from '../shared.js';
import { tempDir } from '../tmp.js';
import { CLI } from '../helpers.js';

const tmp = tempDir('cli');
const env = { ...process.env, FACENET_WEIGHTS_MIRROR: join(SHARED, 'weights') };
const run = (...args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  return { ...r, lines: r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
};
const bbt = (id: string, n: number): string => join(SHARED, 'faces', 'bbt', id, `${id}${n}.png`);
const blank = join(tmp, 'blank.png');

describe('facenet face commands (CLI)', function () {
  this.timeout(600000);
  before(function () {
    sharedPath(this, 'faces/bbt');
    writeFileSync(blank, encodePng({ data: new Uint8Array(100 * 100 * 3).fill(120), width: 100, height: 100 }));
  });

  it('embed: one record per image with box, score, 5 landmarks, embedding; per-file errors; exit 2', () => {
    const r = run('embed', bbt('amy', 1), join(tmp, 'missing.png'), blank);
    expect(r.status).to.equal(2);
    const [ok, missing, none] = r.lines as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    expect(ok.file).to.equal(bbt('amy', 1));
    expect(ok.model).to.equal('dlib-resnet34');
    expect(ok.backend).to.equal('cpu');
    const face = (ok.faces as Record<string, unknown>[])[0]!;
    expect(Object.keys(face)).to.include.members(['box', 'score', 'landmarks', 'embedding']);
    expect(face.box).to.have.length(4);
    expect(face.landmarks).to.have.length(5);
    expect(face.embedding).to.have.length(128);
    expect(missing).to.deep.equal({ file: join(tmp, 'missing.png'), error: { code: 'NOT_FOUND', message: `${join(tmp, 'missing.png')}: no such file` } });
    expect(none).to.deep.include({ file: blank, faces: [] });
    expect(r.stderr).to.not.match(/at .*\.js:\d+/); // no stack trace without --debug
  });

  it('embed on 2 threads (the next files decoded ahead on a worker) prints exactly what 1 thread prints, bad files included', () => {
    const files = [bbt('amy', 1), join(tmp, 'missing.png'), bbt('raj', 2), blank, bbt('amy', 1), join(SHARED, 'faces', 'bbt', 'LICENSE'), bbt('penny', 3)];
    const withThreads = (n: number) => spawnSync(process.execPath, [CLI, 'embed', ...files], { encoding: 'utf8', env: { ...env, FACENET_THREADS: String(n) }, maxBuffer: 64 << 20 });
    const one = withThreads(1), two = withThreads(2);
    expect(one.status).to.equal(2);
    expect(one.stdout.trim().split('\n')).to.have.length(files.length);
    expect(two.stdout === one.stdout, 'the same records, bit for bit').to.equal(true);
    expect(two.status).to.equal(one.status);
  });

  it('embed --aligned and --format npy --out', () => {
    const out = join(tmp, 'e.npy');
    const r = run('embed', '--aligned', '--format', 'npy', '--out', out, bbt('raj', 1), bbt('raj', 2));
    expect(r.status).to.equal(0);
    expect(r.lines.map((l) => (l.faces as { row: number }[])[0]!.row)).to.deep.equal([0, 1]);
    const npy = readFileSync(out);
    expect(npy.subarray(0, 6).toString('latin1')).to.equal('\x93NUMPY');
    expect(npy.toString('latin1', 10, 10 + npy.readUInt16LE(8))).to.contain("'shape': (2, 128)");
    expect(npy.length).to.equal(10 + npy.readUInt16LE(8) + 2 * 128 * 4);
  });

  it('compare: same / different decisions with the exact JSON shape; NO_FACE exits 3; bad files exit 2', () => {
    const same = run('compare', bbt('penny', 1), bbt('penny', 3));
    expect(same.status).to.equal(0);
    expect(Object.keys(same.lines[0]!)).to.include.members(['distance', 'metric', 'threshold', 'same', 'model']);
    expect(same.lines[0]).to.include({ metric: 'euclidean', threshold: 0.6, same: true, model: 'dlib-resnet34' });
    const diff = run('compare', bbt('penny', 1), bbt('howard', 1));
    expect(diff.lines[0]).to.include({ same: false });
    const noFace = run('compare', bbt('penny', 1), blank);
    expect(noFace.status).to.equal(3);
    expect(noFace.lines[0]).to.deep.equal({ error: { code: 'NO_FACE', file: blank, message: `${blank}: no face found` } });
    const corrupt = join(tmp, 'corrupt.jpg');
    writeFileSync(corrupt, readFileSync(join(SHARED, 'faces', 'openface-examples', 'raw', 'clapton-2.jpg')).subarray(0, 500));
    const bad = run('compare', corrupt, bbt('penny', 1));
    expect(bad.status).to.equal(2);
    expect((bad.lines[0]!.error as { code: string }).code).to.equal('CORRUPT_IMAGE');
  });

  it('identify: names people from a gallery folder, null for a stranger, and caches the gallery', () => {
    const gallery = join(tmp, 'gallery');
    for (const id of ['amy', 'leonard', 'sheldon']) {
      mkdirSync(join(gallery, id), { recursive: true });
      for (const n of [1, 2, 3]) copyFileSync(bbt(id, n), join(gallery, id, `${n}.png`));
    }
    writeFileSync(join(gallery, 'amy', 'notes.txt'), 'not an image');
    const r = run('identify', '--gallery', gallery, bbt('amy', 5), bbt('sheldon', 4), bbt('bernadette', 1));
    expect(r.status).to.equal(0);
    const ids = r.lines.map((l) => (l.faces as { identity: string | null }[])[0]!.identity);
    expect(ids).to.deep.equal(['amy', 'sheldon', null]);
    const again = run('identify', '--gallery', gallery, bbt('leonard', 4));
    expect((again.lines[0]!.faces as { identity: string }[])[0]!.identity).to.equal('leonard');
  });

  it('cluster: groups a folder by person; a symlink loop does not hang it', () => {
    const dir = join(tmp, 'cluster');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    for (const id of ['howard', 'penny', 'raj']) for (const n of [1, 2, 4]) copyFileSync(bbt(id, n), join(dir, id === 'raj' ? 'sub' : '.', `${id}-${n}.png`));
    symlinkSync('..', join(dir, 'sub', 'loop'));
    copyFileSync(blank, join(dir, 'blank.png'));
    const r = run('cluster', dir);
    expect(r.status).to.equal(0);
    const out = r.lines[0] as { clusters: string[][]; noise: string[]; no_face: string[] };
    const named = out.clusters.map((c) => [...new Set(c.map((f) => f.split('/').pop()!.split('-')[0]))]);
    expect(named.map((n) => n.length)).to.deep.equal([1, 1, 1]);
    expect(named.flat().sort()).to.deep.equal(['howard', 'penny', 'raj']);
    expect(out.clusters.map((c) => c.length)).to.deep.equal([3, 3, 3]);
    expect(out.no_face).to.deep.equal([join(dir, 'blank.png')]);
  });

  it('eval-pairs: accuracy, best threshold, 10-fold accuracy and AUC from a pairs CSV', () => {
    const csv = join(tmp, 'pairs.csv');
    const rel = (id: string, n: number): string => `${id}/${id}${n}.png`;
    writeFileSync(csv, ['a,b,same', `${rel('amy', 1)},${rel('amy', 2)},1`, `${rel('raj', 1)},${rel('raj', 3)},1`, `${rel('penny', 2)},${rel('penny', 4)},1`,
      `${rel('amy', 1)},${rel('raj', 1)},0`, `${rel('penny', 2)},${rel('raj', 3)},0`, `# comment`, `${rel('amy', 2)},${rel('penny', 4)},0`].join('\n'));
    const r = run('eval-pairs', csv, '--root', join(SHARED, 'faces', 'bbt'));
    expect(r.status).to.equal(0);
    expect(r.lines[0]).to.include({ pairs: 6, accuracy: 1, best_accuracy: 1, auc: 1 });
    expect(Object.keys(r.lines[0]!)).to.include.members(['best_threshold', 'tenfold_accuracy', 'tenfold_std', 'skipped']);
  });

  it('eval-pairs: absolute paths in the CSV are used as they are; when no pair can be scored, the error says why', () => {
    const csv = join(tmp, 'absolute.csv');
    const abs = (id: string, n: number): string => join(SHARED, 'faces', 'bbt', id, `${id}${n}.png`);
    writeFileSync(csv, [`${abs('amy', 1)},${abs('amy', 2)},1`, `${abs('amy', 1)},${abs('raj', 1)},0`].join('\n'));
    const r = run('eval-pairs', csv);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.lines[0]).to.include({ pairs: 2, best_accuracy: 1 });
    const missing = join(tmp, 'missing.csv');
    writeFileSync(missing, 'nowhere/a.png,nowhere/b.png,1\n');
    const m = run('eval-pairs', missing);
    expect(m.status).to.equal(2);
    expect(m.stderr).to.match(/no pair could be evaluated: nowhere\/a\.png: NOT_FOUND \(paths are relative to .+; --root sets it\)/);
  });

  it('usage errors exit 2 with a clear message', () => {
    const r = run('compare', bbt('amy', 1));
    expect(r.status).to.equal(2);
    expect(r.stderr).to.match(/compare needs exactly two images, got 1/);
    expect(run('embed', '--pick', 'biggest', bbt('amy', 1)).stderr).to.match(/--pick must be largest, center or all/);
    expect(run('compare', '--backend', 'tpu', bbt('amy', 1), bbt('amy', 2)).stderr).to.match(/--backend must be cpu, gpu or gpu:MODE/);
  });

  it('--backend gpu:webasm: the same distance as the CPU, and the JSON says what ran', () => {
    const cpu = run('compare', bbt('amy', 1), bbt('amy', 2));
    const gpu = run('compare', '--backend', 'gpu:webasm', bbt('amy', 1), bbt('amy', 2));
    expect(gpu.status, gpu.stderr).to.equal(0);
    expect(gpu.lines[0]!.backend).to.equal('gpu:webasm');
    expect(cpu.lines[0]!.backend).to.equal('cpu');
    expect(Math.abs((gpu.lines[0]!.distance as number) - (cpu.lines[0]!.distance as number))).to.be.at.most(1e-4);
  });
});
