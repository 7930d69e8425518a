/**
 * The `facenet` command ships as one bundled file (scripts/bundle.ts) with the worker scripts the library
 * starts beside it. The CLI tests all run the bundle; these check that it is what package.json's bin runs,
 * that it behaves as the unbundled entry, and that its workers load (a missing GEMM worker fails the
 * threaded `facenet bench` test; a missing read-ahead worker would only make the caller decode every file).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { readImage } from '../../src/io/image.js';
import { encodeJpeg, testCard } from '../fixtures/images.js';
import { CLI } from '../helpers.js';
import { tempDir } from '../tmp.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const unbundled = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('the bundled `facenet` command', function () {
  this.timeout(60000);
  it('is package.json\'s bin, and answers as the unbundled entry does (version, the model registry)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: { facenet: string } };
    expect(resolve(root, pkg.bin.facenet)).to.equal(CLI);
    for (const args of [['--version'], ['models', '--json']]) {
      const bundled = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      const plain = spawnSync(process.execPath, [unbundled, ...args], { encoding: 'utf8' });
      expect(bundled.status, bundled.stderr).to.equal(0);
      expect(bundled.stdout, args.join(' ')).to.equal(plain.stdout);
      expect(bundled.stdout.length).to.be.greaterThan(0);
    }
  });

  it('stops quietly, status 0, when the reader of its output goes away (`| head`), on both entries', () => {
    for (const cli of [CLI, unbundled]) {
      // `true` exits without reading, long before node has started: every write meets a closed pipe.
      const r = spawnSync('bash', ['-c', `"${process.execPath}" "${cli}" models --json | true; echo "status \${PIPESTATUS[0]}"`], { encoding: 'utf8' });
      expect(r.stderr, cli).to.equal('');
      expect(r.stdout.trim(), cli).to.equal('status 0');
    }
  });

  it('its read-ahead worker script decodes a file as readImage does', async () => {
    const file = join(tempDir('bundle'), 'card.jpg');
    writeFileSync(file, encodeJpeg(testCard(40, 30)));
    const worker = new Worker(join(dirname(CLI), 'read_ahead_worker.js'), { workerData: { limits: {} } });
    try {
      const answer = await new Promise<{ index: number; data: Uint8Array; width: number; height: number }>((done, fail) => {
        worker.once('message', done);
        worker.once('error', fail);
        worker.postMessage({ index: 7, path: file });
      });
      const want = readImage(file);
      expect([answer.index, answer.width, answer.height]).to.deep.equal([7, want.width, want.height]);
      expect(Buffer.from(answer.data).equals(Buffer.from(want.data))).to.equal(true);
    } finally {
      await worker.terminate();
    }
  });
});
