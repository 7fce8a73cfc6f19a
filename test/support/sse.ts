/**
 * The blocks (events and comments, without their blank-line ends) of a server-sent event
 * stream as they arrive, for tests that read GET /v1/watch. Ends with the stream; a caller that
 * breaks out early aborts its request itself.
 */
export async function* sseBlocks(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<string> {
  let text = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return;
    text += Buffer.from(chunk.value).toString("utf8");
    const blocks = text.split("\n\n");
    text = blocks.pop() ?? "";
    yield* blocks;
  }
}
