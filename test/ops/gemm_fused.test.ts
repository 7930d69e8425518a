/**
 * The fused GEMM kernel (relaxed SIMD's f32x4.relaxed_madd: one fused multiply-add where the CPU has
 * one) runs wherever the engine compiles it: Node 22+ and current browsers, where the fused kernel is
 * then the default. Node 20 needs --experimental-wasm-relaxed-simd. So the GEMM and convolution suites
 * run again here in a child Node with relaxed SIMD switched on (the flag where this Node takes it): every
 * shape and transpose against float64, bit-identity across thread counts, the convolutions' gradients.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const at = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const MOCHA = at('../../../node_modules/mocha/bin/mocha.js');
const SUITES = [at('./gemm.test.js'), at('./conv.test.js')];

/** A child Node running the suites, with relaxed SIMD on: by the flag, or by default where the flag is gone. */
function runSuitesWithRelaxedSimd(): { status: number | null; out: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, FACENET_EXPECT_FUSED: '1' };
  delete env.FACENET_WASM_FMA;
  const args = [MOCHA, '--no-config', '--require', at('../setup.js'), '--timeout', '600000', '--reporter', 'dot', ...SUITES];
  let r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', ...args], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.status !== 0 && /bad option/.test(r.stderr)) r = spawnSync(process.execPath, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('GEMM: the fused (relaxed SIMD) kernel', function () {
  this.timeout(600000);
  it('passes the GEMM and convolution suites in a child Node with relaxed SIMD on (the suites check that the fused kernel runs there)', () => {
    const { status, out } = runSuitesWithRelaxedSimd();
    expect(status, out.slice(-4000)).to.equal(0);
    expect(out).to.match(/\d+ passing/);
    expect(out).not.to.match(/\d+ (failing|pending)/);
  });
});
