/** The CI-sized Fashion-MNIST open-set run (`npm run demo:fashion -- --quick`): training must help. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

describe('Fashion-MNIST open-set demo (quick)', function () {
  this.timeout(600000);
  it('trained verification accuracy on unseen classes beats the untrained network', function () {
    if (!existsSync(DATA)) {
      if (process.env.CI === 'true') throw new Error(`${DATA} missing: .ci/run installs dataset-fashion-mnist`);
      console.log('      (pending: apt-get install dataset-fashion-mnist)');
      this.skip();
    }
    const script = fileURLToPath(new URL('../../scripts/demo_fashion.js', import.meta.url));
    const r = spawnSync(process.execPath, [script, '--quick'], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { untrained: number; trained: number; seconds: number; steps: number };
    console.log('      ', JSON.stringify(last));
    expect(last.steps).to.equal(150);
    expect(last.trained).to.be.greaterThan(last.untrained + 0.03);
  });
});
