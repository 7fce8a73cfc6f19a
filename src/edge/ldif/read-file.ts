import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { LdifParser, type ParserOptions } from "./parse.ts";
import type { LdifItem } from "./record.ts";

/** Where a streaming read has got to: for progress bars. */
export interface ReadProgress {
  /** Bytes of the file read from disk so far (ahead of the records yielded by at most a chunk). */
  bytesRead: number;
}

/**
 * The items of an LDIF file, read as a stream line by line: memory holds one record, never the
 * file. `progress.bytesRead` follows the read as it goes.
 */
export async function* readLdifFile(
  path: string,
  options: ParserOptions = {},
  progress: ReadProgress = { bytesRead: 0 },
): AsyncGenerator<LdifItem> {
  const input = createReadStream(path, { encoding: "utf8" });
  input.on("data", () => {
    progress.bytesRead = input.bytesRead;
  });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const parser = new LdifParser(options);
  try {
    for await (const line of lines) yield* parser.push(line);
    yield* parser.end();
  } finally {
    lines.close();
    input.destroy();
  }
}
