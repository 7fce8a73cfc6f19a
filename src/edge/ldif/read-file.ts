import { createReadStream } from "node:fs";
import { LdifParser, logicalLineCharsMax, type ParserOptions } from "./parse.ts";
import type { LdifItem } from "./record.ts";

/** Where a streaming read has got to: for progress bars. */
export interface ReadProgress {
  /** Bytes of the file read from disk so far (ahead of the records yielded by at most a chunk). */
  bytesRead: number;
}

/** Bytes read from the file at a time. */
const chunkBytes = 256 * 1024;

/**
 * The items of an LDIF file, read as a stream in chunks and split into lines here (LF or
 * CRLF; the parser drops a trailing CR and decodes UTF-8): memory holds a chunk and the record
 * being read, never the file. `progress.bytesRead` follows the read as it goes.
 */
export async function* readLdifFile(
  path: string,
  options: ParserOptions = {},
  progress: ReadProgress = { bytesRead: 0 },
): AsyncGenerator<LdifItem> {
  const input = createReadStream(path, { highWaterMark: chunkBytes });
  // Lines go to the parser as bytes (one character each): it decodes UTF-8 once folded lines
  // are joined, so a character split by a chunk boundary or by a fold comes out whole.
  const parser = new LdifParser({ ...options, byteLines: true });
  let partial = "";
  /** Inside a physical line too long to keep: its start went to the parser, the rest is dropped. */
  let skipping = false;
  try {
    for await (const chunk of input) {
      progress.bytesRead = input.bytesRead;
      const lines = (partial + (chunk as Buffer).toString("latin1")).split("\n");
      partial = lines.pop() ?? "";
      if (skipping && lines.length > 0) {
        lines.shift();
        skipping = false;
      }
      const items: LdifItem[] = [];
      for (const line of lines) for (const item of parser.push(line)) items.push(item);
      if (partial.length > logicalLineCharsMax && !skipping) {
        // The parser refuses the record for its length; holding the rest of the line would not bound memory.
        items.push(...parser.push(partial));
        skipping = true;
      }
      if (skipping) partial = "";
      yield* items;
    }
    if (partial !== "") yield* parser.push(partial);
    yield* parser.end();
  } finally {
    input.destroy();
  }
}
