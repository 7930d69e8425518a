/**
 * Listing images in folders safely: only .png/.jpg/.jpeg files, symlinked folders visited once (by real
 * path, so a symlink loop ends), unreadable entries reported instead of thrown, names kept as given.
 */
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;

export interface Listing {
  files: string[];
  problems: { path: string; message: string }[];
}

export function listImages(dir: string, options: { recursive?: boolean } = {}): Listing {
  const out: Listing = { files: [], problems: [] };
  const seen = new Set<string>();
  const walk = (d: string): void => {
    let real: string;
    try {
      real = realpathSync(d);
    } catch (err) {
      out.problems.push({ path: d, message: (err as Error).message });
      return;
    }
    if (seen.has(real)) return; // a symlink loop or a folder reached twice
    seen.add(real);
    let entries: string[];
    try {
      entries = readdirSync(d).sort();
    } catch (err) {
      out.problems.push({ path: d, message: (err as Error).message });
      return;
    }
    for (const name of entries) {
      const p = join(d, name);
      let isDir = false, isFile = false;
      try {
        const s = statSync(p);
        isDir = s.isDirectory();
        isFile = s.isFile();
      } catch (err) {
        out.problems.push({ path: p, message: (err as Error).message });
        continue;
      }
      if (isDir && options.recursive) walk(p);
      else if (isFile && IMAGE_EXTENSIONS.test(name)) out.files.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Identity folders of a gallery: DIR/<identity>/<images>. */
export function listGallery(dir: string): { identities: { name: string; files: string[] }[]; problems: Listing['problems'] } {
  const problems: Listing['problems'] = [];
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    return { identities: [], problems: [{ path: dir, message: (err as Error).message }] };
  }
  const identities: { name: string; files: string[] }[] = [];
  for (const name of names) {
    const p = join(dir, name);
    try {
      if (!statSync(p).isDirectory()) continue;
    } catch (err) {
      problems.push({ path: p, message: (err as Error).message });
      continue;
    }
    const listing = listImages(p);
    problems.push(...listing.problems);
    if (listing.files.length > 0) identities.push({ name, files: listing.files });
  }
  return { identities, problems };
}
