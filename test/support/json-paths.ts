import assert from "node:assert/strict";

/** A position in a JSON value: object keys and list indexes from the root. */
export type JsonPath = ReadonlyArray<string | number>;

/** Every position in a JSON value, parents before children. */
export function pathsOf(value: unknown, prefix: JsonPath = []): JsonPath[] {
  const out: JsonPath[] = [];
  if (Array.isArray(value)) {
    value.forEach((child, index) => {
      out.push([...prefix, index], ...pathsOf(child, [...prefix, index]));
    });
  } else if (typeof value === "object" && value !== null) {
    for (const [key, child] of Object.entries(value))
      out.push([...prefix, key], ...pathsOf(child, [...prefix, key]));
  }
  return out;
}

/** Replaces (or, with `remove`, deletes) the value at `path` in a fresh JSON copy of `root`. */
export function replacedAt(root: unknown, path: JsonPath, replacement: unknown, remove: boolean): unknown {
  const copy: unknown = JSON.parse(JSON.stringify(root));
  let container = copy as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) container = container[step] as Record<string | number, unknown>;
  const last = path.at(-1);
  assert.ok(last !== undefined, "an empty path has nothing to replace");
  if (Array.isArray(container) && typeof last === "number") {
    if (remove) container.splice(last, 1);
    else container[last] = replacement;
  } else if (remove) delete container[last];
  else container[last] = replacement;
  return copy;
}
