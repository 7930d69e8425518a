/** The generated bad-input corpus through the CLI: every file gets a record, none crashes the batch. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeCorpus } from '../fixtures/make_corpus.js';
import { SHARED } from '../shared.js';
import { tempDir } from '../tmp.js';
import { CLI } from '../helpers.js';

describe('bad-input corpus through `facenet embed`', function () {
  this.timeout(300000);
  it('each image gets a result or a typed error record; the run continues and exits 2; no stack traces', () => {
    const files = makeCorpus(tempDir('corpus')).filter((f) => f.includes('/images/'));
    const r = spawnSync(process.execPath, [CLI, 'embed', ...files], { encoding: 'utf8', env: { ...process.env, FACENET_WEIGHTS_MIRROR: join(SHARED, 'weights') } });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.not.match(/\n\s+at /);
    const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; faces?: unknown[]; error?: { code: string } });
    expect(records.map((x) => x.file)).to.deep.equal(files);
    const byName = Object.fromEntries(records.map((x) => [x.file.split('/').pop()!, x.error?.code ?? `faces:${x.faces!.length}`]));
    expect(byName).to.include({
      'empty.png': 'EMPTY_FILE', 'truncated.png': 'CORRUPT_IMAGE', 'truncated.jpg': 'CORRUPT_IMAGE', 'bad-crc.png': 'CORRUPT_IMAGE',
      'gif-named.png': 'UNSUPPORTED_FORMAT', 'random.jpg': 'UNSUPPORTED_FORMAT', 'bomb-60000.png': 'IMAGE_TOO_LARGE', 'bomb-60000.jpg': 'IMAGE_TOO_LARGE',
      'cmyk.jpg': 'faces:0', 'cmyk-no-adobe.jpg': 'UNSUPPORTED_FORMAT',
      '16bit.png': 'faces:0', 'palette.png': 'faces:0', 'gray-alpha.png': 'faces:0', '1x1.png': 'faces:0',
    });
    for (let o = 1; o <= 8; o++) expect(byName[`exif-${o}.jpg`]).to.equal('faces:0');
  });

  it('limits from the command line: --max-file-mb and --max-batch-mb give typed records, the other files still run', () => {
    const photo = join(SHARED, 'faces', 'bbt', 'amy', 'amy1.png');
    const env = { ...process.env, FACENET_WEIGHTS_MIRROR: join(SHARED, 'weights') };
    const run = (...args: string[]): { status: number | null; records: { error?: { code: string; message: string }; faces?: unknown[] }[] } => {
      const r = spawnSync(process.execPath, [CLI, 'embed', ...args], { encoding: 'utf8', env });
      expect(r.stderr).to.not.match(/\n\s+at /);
      return { status: r.status, records: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { error?: { code: string; message: string } }) };
    };
    const small = run('--max-file-mb', '0.001', photo);
    expect(small.status).to.equal(2);
    expect(small.records[0]!.error!.code).to.equal('FILE_TOO_LARGE');
    const tight = run('--max-batch-mb', '1', photo);
    expect(tight.status).to.equal(2);
    expect(tight.records[0]!.error!.code).to.equal('BATCH_MEMORY');
    expect(tight.records[0]!.error!.message).to.match(/raise maxBatchBytes \/ --max-batch-mb/);
    const roomy = run('--max-batch-mb', '512', photo);
    expect(roomy.status).to.equal(0);
    expect(roomy.records[0]!.faces).to.have.length(1);
  });
});
