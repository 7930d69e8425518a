/** A fresh temporary directory per test file, removed at exit (one exit listener for all of them). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `facenet-ts-${prefix}-`));
  if (dirs.length === 0) process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  dirs.push(dir);
  return dir;
}
