import { parseArgs } from "node:util";
import { BackupError, backupDatabase, restoreDatabase } from "../store/backup.ts";
import { DataDirectoryUnusableError } from "../store/data-directory.ts";
import { usageErrorText } from "./cli-support.ts";

/**
 * `plexus backup` and `plexus restore`: a consistent copy of a node's database, taken while the
 * node runs, and its return into a stopped node's data directory (docs/operations.md).
 */
export const backupUsage = `usage: plexus backup --data DIR --output FILE
       plexus restore --data DIR --from FILE

  backup   writes a consistent copy of the node's database in DIR to FILE (a new file, in
           a directory that exists; written as FILE.partial, renamed when complete); the
           node may keep running
  restore  puts the copy FILE in place of the database in DIR (created if missing); the node
           must be stopped. A damaged backup, or the backup of another node or of another
           cluster than the database in DIR, is refused.
           The database it replaces is kept beside it (plexus.db.replaced-<time>). On its
           next start the node sees a restored copy, takes a new invocation id, and pulls
           what the copy lacks from its partners
`;

interface Output {
  write(text: string): unknown;
}

function options(args: readonly string[], second: "output" | "from"): { data: string; file: string } {
  const { values } = parseArgs({
    args: [...args],
    options: { data: { type: "string" }, [second]: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  const data = values.data;
  const file = values[second];
  if (typeof data !== "string" || data === "") throw new Error("--data DIR is required");
  if (typeof file !== "string" || file === "") throw new Error(`--${second} FILE is required`);
  return { data, file };
}

export function backupCommand(
  command: "backup" | "restore",
  args: readonly string[],
  stdout: Output,
  stderr: Output,
): number {
  if (args.includes("--help") || args.includes("-h")) {
    stdout.write(backupUsage);
    return 0;
  }
  let parsed: { data: string; file: string };
  try {
    parsed = options(args, command === "backup" ? "output" : "from");
  } catch (error) {
    stderr.write(usageErrorText(command, (error as Error).message, backupUsage));
    return 2;
  }
  try {
    if (command === "backup") {
      const info = backupDatabase(parsed.data, parsed.file);
      stdout.write(
        `backup of node ${info.node} at usn ${info.usn} written to ${parsed.file} (${info.bytes} bytes)\n`,
      );
    } else {
      const info = restoreDatabase(parsed.data, parsed.file, new Date());
      stdout.write(
        `restored node ${info.node} from ${parsed.file} (usn ${info.usn})` +
          (info.replacedBy === null ? "" : `; the replaced database is kept as ${info.replacedBy}`) +
          "\nOn its next start the node takes a new invocation id and catches up from its partners.\n",
      );
      if (info.replacedUnreadable !== null)
        stderr.write(
          `plexus restore: the replaced database could not be read (${info.replacedUnreadable}), so it was not checked that the backup is of this node and cluster; plexus start refuses it if it is of another node\n`,
        );
      if (info.newerInReplaced !== null)
        stderr.write(
          `plexus restore: note: the replaced database holds changes node ${info.node} made after this backup was taken (its newest at usn ${info.newerInReplaced.replaced}, the backup's at ${info.newerInReplaced.backup}): those its partners had not pulled before it stopped are not in the restored copy, only in ${info.replacedBy}\n`,
        );
    }
    return 0;
  } catch (error) {
    const code =
      error instanceof BackupError || error instanceof DataDirectoryUnusableError ? `${error.code}: ` : "";
    stderr.write(`plexus ${command}: ${code}${(error as Error).message}\n`);
    return 1;
  }
}
