/**
 * Mocha root hooks: converted models go to a cache inside the repo (git-ignored) unless FACENET_CACHE
 * is set, so tests never write into the user's home cache.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
process.env.FACENET_CACHE ??= join(repoRoot, '.cache', 'facenet-ts');
