import cliProgress from "cli-progress";
import type { ReadProgress } from "../edge/ldif/read-file.ts";
import type { Output } from "./cli-support.ts";
import type { ImportCounts } from "./ldif-checkpoint.ts";

/**
 * How `plexus import` shows where it is: on a terminal, a cli-progress bar over the file's
 * bytes (with the records done and their rate); elsewhere (a pipe, a log file) one plain line
 * every `progressLineIntervalMs`; for small files nothing. Messages about bad records go
 * through `log`, above the bar.
 */
export const progressBytesMin = 1024 * 1024;
export const progressLineIntervalMs = 10_000;

export type ProgressStream = Output & { readonly isTTY?: boolean };

export class ImportProgress {
  readonly read: ReadProgress = { bytesRead: 0 };
  private readonly bars: cliProgress.MultiBar | null = null;
  private readonly bar: cliProgress.SingleBar | null = null;
  private readonly started = performance.now();
  private lastLine = performance.now();
  private stopped = false;

  constructor(
    private readonly totalBytes: number,
    private readonly stream: ProgressStream,
    private readonly label: string,
  ) {
    if (totalBytes < progressBytesMin || stream.isTTY !== true) return;
    this.bars = new cliProgress.MultiBar(
      {
        stream: stream as NodeJS.WritableStream,
        format: `${label} [{bar}] {percentage}% | {records} records | {rate} records/s | failed {failed}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.bars.create(totalBytes, 0, { records: 0, rate: 0, failed: 0 });
  }

  log(text: string): void {
    if (this.bars !== null) this.bars.log(text);
    else this.stream.write(text);
  }

  /** `records` done in all, `thisRun` of them by this run (the rate's numerator). */
  update(records: number, thisRun: number, counts: ImportCounts): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? Math.round(thisRun / seconds) : 0;
    if (this.bar !== null) {
      this.bar.update(Math.min(this.read.bytesRead, this.totalBytes), {
        records,
        rate,
        failed: counts.failed,
      });
      return;
    }
    if (this.totalBytes < progressBytesMin || performance.now() - this.lastLine < progressLineIntervalMs)
      return;
    this.lastLine = performance.now();
    const percent = Math.floor((100 * Math.min(this.read.bytesRead, this.totalBytes)) / this.totalBytes);
    this.stream.write(
      `${this.label}: ${records} records (${percent}% of the file), ${rate} records/s, failed ${counts.failed}\n`,
    );
  }

  /**
   * Ends the bar; `complete` shows it full. Called on every way out of an import, a failed one
   * too: a running bar's redraw timer would otherwise keep the process alive (and the cursor
   * hidden) after the error is printed. A second call does nothing.
   */
  stop(complete = true): void {
    if (this.stopped) return;
    this.stopped = true;
    if (complete && this.bar !== null) this.bar.update(this.totalBytes);
    this.bars?.stop();
  }
}
