import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { UrlReader } from "../edge/ldif/parse.ts";

/**
 * `:<` values of `plexus import` (docs/ldif.md): `file://` URLs only, naming a regular file in
 * the directory of the LDIF file or below it, at most `urlFileBytesMax` bytes.
 *
 * Why confined: an LDIF file often comes from elsewhere (another team, a vendor's migration
 * tool), and whoever runs the import usually may read much more than the directory's readers
 * may — `:< file:///etc/shadow` or `file:///proc/self/environ` would copy secrets into
 * entries. Why regular files, read to a bound: a device (`/dev/zero`), a FIFO or a file under
 * `/proc` (which reports size 0) would otherwise be read without end or without its size.
 */

/** A `:<` file at most. */
export const urlFileBytesMax = 4 * 1024 * 1024;
/** Bytes read at a time: small values (the usual case) cost no 4 MiB buffer. */
const readChunkBytes = 64 * 1024;

/** The `:<` reader for the LDIF file at `ldifFile` (which exists). */
export function fileUrlReader(ldifFile: string): UrlReader {
  // Symlinks resolved on both sides: a link inside the directory cannot point out of it.
  const root = realpathSync(dirname(ldifFile));
  return (url) => readFileUrl(url, root);
}

function readFileUrl(url: string, root: string): Uint8Array | { readonly error: string } {
  if (!url.startsWith("file://")) return { error: `only file:// URLs are read, not '${url}'` };
  let path: string;
  try {
    path = realpathSync(fileURLToPath(url));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { error: `cannot read '${url}': ${code ?? (error as Error).message}` };
  }
  const inside = relative(root, path);
  if (inside === "" || inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside))
    return {
      error: `${path} is not in ${root}, the LDIF file's directory: ':<' reads files there only`,
    };
  return readRegularFile(path);
}

/** The bytes of the regular file at `path`, read to its end but never past the bound. */
function readRegularFile(path: string): Uint8Array | { readonly error: string } {
  let descriptor: number;
  try {
    // Non-blocking: opening a FIFO must not wait for a writer (it is refused just below).
    descriptor = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    return { error: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  try {
    if (!fstatSync(descriptor).isFile()) return { error: `${path} is not a regular file` };
    const chunks: Buffer[] = [];
    let total = 0;
    // Bounded by the byte count, not by the size stat reports (0 for /proc files).
    while (total <= urlFileBytesMax) {
      const chunk = Buffer.alloc(readChunkBytes);
      const read = readSync(descriptor, chunk, 0, chunk.length, null);
      if (read === 0) return Buffer.concat(chunks, total);
      chunks.push(chunk.subarray(0, read));
      total += read;
    }
    return { error: `${path} is larger than ${urlFileBytesMax} bytes` };
  } catch (error) {
    return { error: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  } finally {
    closeSync(descriptor);
  }
}
