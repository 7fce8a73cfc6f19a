import { spawnSync } from "node:child_process";

/**
 * Small filesystems of the tests' own: a tmpfs of a given size (a disk that fills up) or read-only,
 * mounted on a directory the test made. Root on Linux only; elsewhere the tests skip, saying why.
 */

/**
 * Mounts a tmpfs with `options` (`size=64k`, `size=1m,ro`) on the existing directory `path`:
 * null once mounted, else why not (not root, not Linux, mount refused), for the test to skip.
 */
export function mountTmpfs(path: string, options: string): string | null {
  if (process.platform !== "linux") return "needs Linux, to mount a tmpfs";
  if (process.getuid?.() !== 0) return "needs root, to mount a tmpfs";
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", path]);
  return mounted.status === 0 ? null : `mount -t tmpfs failed: ${mounted.stderr.toString().trim()}`;
}

/** Mounts the tmpfs on `path` again with `options` (`remount,ro`, `remount,size=64m`); throws if refused. */
export function remountTmpfs(path: string, options: string): void {
  const result = spawnSync("mount", ["-o", options, path]);
  if (result.status !== 0) throw new Error(`mount -o ${options} ${path}: ${result.stderr.toString().trim()}`);
}

export function unmountTmpfs(path: string): void {
  spawnSync("umount", [path]);
}
