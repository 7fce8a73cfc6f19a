import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { writeConcernTimeoutMsMax } from "../core/node/write-concern.ts";
import { pagedSearchEntriesMax } from "../core/replica/read.ts";
import {
  type Environment,
  integerFlag,
  nodeUrl,
  type Output,
  reportFailures,
  sessionLine,
  sessionOf,
  UsageError,
  writeConcernFlag,
} from "./cli-support.ts";
import {
  type ChangeFlag,
  firstRdn,
  formatEntry,
  formatEntryCount,
  formatOutcome,
  parseAttributes,
  parseChanges,
} from "./entry-text.ts";
import { locatedApi, locatorFlags, locatorUsage } from "./located.ts";
import { type Answered, type Attributes, type CallOptions, connect, type NodeApi } from "./remote.ts";

/**
 * The entry commands: `plexus get | add | modify | delete | move | search`, each one request
 * (a search: one per page) to the node at --url or PLEXUS_URL, or to one the locator finds with
 * --zone (src/cli/located.ts: own site first, failing over). Text output is LDIF-like;
 * --json prints the node's answer with the session token added as `session`. In text mode a
 * write prints its session token on stderr as `plexus-session: TOKEN`; either way, --session
 * (or PLEXUS_SESSION) hands a token to the next command, on any node, for read-your-writes.
 */
export const entryCommandNames = ["get", "add", "modify", "delete", "move", "search"] as const;
export type EntryCommandName = (typeof entryCommandNames)[number];

export function isEntryCommand(name: string): name is EntryCommandName {
  return (entryCommandNames as readonly string[]).includes(name);
}

/** A JSON attributes file larger than this is refused before it is read. */
const attributesFileBytesMax = 8 * 1024 * 1024;
/** The API's own ceiling for a paged search (docs/api.md). */
const searchSizeLimitMax = pagedSearchEntriesMax;

const common = `
common options:
  --url URL               the node to ask (default: $PLEXUS_URL)
${locatorUsage}
  --session TOKEN         a session token from an earlier command (default: $PLEXUS_SESSION):
                          the node answers once it has everything that session wrote;
                          an empty one is none
  --json                  print the node's JSON answer, with "session" added`;
const writeCommon = `
  --write-concern LEVEL   local (default), site, sites=N or all: answer once the write has
                          reached that far (docs/api.md, "Write concern")
  --timeout MS            how long the write concern may take (1..60000, default 5000)
A write prints its session token on stderr as 'plexus-session: TOKEN' (in --json: "session").`;

const usages: Record<EntryCommandName, string> = {
  get: `usage: plexus get DN [--attributes a,b] [common options]
Prints one entry (LDIF). --attributes selects types: '*' all user attributes, '+' operational
ones (entryGUID, usnChanged, ...), '1.1' none.${common}`,
  add: `usage: plexus add DN type=value... [--file FILE] [write options] [common options]
Creates an entry. Each type=value adds one value (repeat a type for several); --file reads a
JSON object of types to a value or a list of values, e.g. {"objectClass":["person"],"cn":"alice"}.${common}${writeCommon}`,
  modify: `usage: plexus modify DN [--add type=value]... [--delete type[=value]]... [--replace type[=value]]...
                     [write options] [common options]
Changes an entry atomically, in the order given (LDAP modify): --add adds a value, --delete
removes one value (or with no value the whole attribute), --replace sets the attribute to the
values given by consecutive --replace flags (with no value: removes it).${common}${writeCommon}`,
  delete: `usage: plexus delete DN [--subtree] [write options] [common options]
Deletes a leaf entry; --subtree deletes the entry and everything below it.${common}${writeCommon}`,
  move: `usage: plexus move DN [--new-rdn RDN] [--new-parent DN] [--keep-old-rdn] [write options] [common options]
Renames and/or moves an entry (at least one of --new-rdn, --new-parent). --keep-old-rdn keeps
the old RDN's value in the entry.${common}${writeCommon}`,
  search: `usage: plexus search BASE [--filter F] [--scope base|one|sub] [--attributes a,b]
                     [--size-limit N] [common options]
Prints the entries under BASE matching the RFC 4515 filter (default (objectClass=*); one item
may come without parentheses: uid=alice), scope sub by default, at most --size-limit entries
(1..10000000, default 1000). Pages of 1000 are fetched and printed one by one, so a large
result is never held whole; a failure midway exits non-zero after the entries printed.${common}`,
};

const commonOptions = {
  url: { type: "string" },
  ...locatorFlags,
  session: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
const writeOptions = { "write-concern": { type: "string" }, timeout: { type: "string" } } as const;

interface Context {
  readonly api: NodeApi;
  readonly call: CallOptions;
  readonly json: boolean;
  readonly stdout: Output;
  readonly stderr: Output;
}

function context(
  values: {
    url?: string | undefined;
    zone?: string | undefined;
    "dns-server"?: string[] | undefined;
    session?: string | undefined;
    json?: boolean | undefined;
  },
  write: { "write-concern"?: string | undefined; timeout?: string | undefined },
  env: Environment,
  stdout: Output,
  stderr: Output,
): Context {
  let api: NodeApi;
  try {
    api = locatedApi(values) ?? connect(nodeUrl(values.url, env));
  } catch (error) {
    throw error instanceof UsageError ? error : new UsageError((error as Error).message);
  }
  const session = sessionOf(values.session, env);
  return {
    api,
    call: {
      session,
      writeConcern: writeConcernFlag(write["write-concern"]),
      timeoutMs: integerFlag(write.timeout, "--timeout", 1, writeConcernTimeoutMsMax),
    },
    json: values.json === true,
    stdout,
    stderr,
  };
}

/**
 * --write-concern as given, once the node's own parser accepts it: a level the node would
 * refuse is a mistake in the command line (exit 2, nothing sent), told in the node's words.
 */
/** Prints a write's answer; the session token goes to stderr in text mode. */
function printWrite(ctx: Context, verb: string, answer: Answered<Record<string, unknown>>): number {
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify({ ...answer.body, session: answer.session })}\n`);
  } else {
    ctx.stdout.write(formatOutcome(verb, answer.body));
    ctx.stderr.write(sessionLine(answer.session));
  }
  return 0;
}

function oneDn(positionals: readonly string[], what: string): string {
  const [dn, ...extra] = positionals;
  if (dn === undefined) throw new UsageError(`${what} is required`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return dn;
}

function attributeNames(text: string | undefined): string[] | undefined {
  return text?.split(",").map((name) => name.trim());
}

/** A JSON object of types to a value or a list of values. */
function readAttributesFile(path: string): Attributes {
  let raw: unknown;
  try {
    const text = readFileSync(path);
    if (text.length > attributesFileBytesMax) throw new Error(`larger than ${attributesFileBytesMax} bytes`);
    raw = JSON.parse(text.toString("utf8"));
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new UsageError(`${path} must hold a JSON object of attribute types`);
  const attributes: Attributes = {};
  for (const [type, value] of Object.entries(raw)) {
    const values = Array.isArray(value) ? value : [value];
    if (values.some((item) => typeof item !== "string"))
      throw new UsageError(`${path}: ${type} must be a string or a list of strings`);
    attributes[type] = values as string[];
  }
  return attributes;
}

function merged(into: Attributes, from: Attributes): Attributes {
  const result: Attributes = { ...into };
  for (const [type, values] of Object.entries(from)) result[type] = [...(result[type] ?? []), ...values];
  return result;
}

async function get(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...commonOptions, attributes: { type: "string" } },
    allowPositionals: true,
  });
  if (values.help === true) return help(stdout, "get");
  const dn = oneDn(positionals, "DN");
  const ctx = context(values, {}, env, stdout, stderr);
  const answer = await ctx.api.get(dn, attributeNames(values.attributes), ctx.call);
  stdout.write(
    ctx.json
      ? `${JSON.stringify({ ...answer.body, session: answer.session })}\n`
      : `${formatEntry(answer.body)}\n`,
  );
  return 0;
}

async function add(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...commonOptions, ...writeOptions, file: { type: "string" } },
    allowPositionals: true,
  });
  if (values.help === true) return help(stdout, "add");
  const [dn, ...assignments] = positionals;
  if (dn === undefined) throw new UsageError("DN is required");
  let attributes: Attributes;
  try {
    attributes = parseAttributes(assignments);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.file !== undefined) attributes = merged(readAttributesFile(values.file), attributes);
  if (Object.keys(attributes).length === 0)
    throw new UsageError("no attributes: give type=value arguments or --file");
  const ctx = context(values, values, env, stdout, stderr);
  return printWrite(ctx, "added", await ctx.api.add(dn, attributes, ctx.call));
}

async function modify(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals, tokens } = parseArgs({
    args,
    options: {
      ...commonOptions,
      ...writeOptions,
      add: { type: "string", multiple: true },
      delete: { type: "string", multiple: true },
      replace: { type: "string", multiple: true },
    },
    allowPositionals: true,
    tokens: true,
  });
  if (values.help === true) return help(stdout, "modify");
  const dn = oneDn(positionals, "DN");
  // The order of the flags is the order of the changes: tokens keep it, values do not.
  const flags: { operation: ChangeFlag; text: string }[] = [];
  for (const token of tokens) {
    if (token.kind !== "option" || token.value === undefined) continue;
    if (token.name === "add" || token.name === "delete" || token.name === "replace")
      flags.push({ operation: token.name, text: token.value });
  }
  if (flags.length === 0) throw new UsageError("no changes: give --add, --delete or --replace");
  let changes: ReturnType<typeof parseChanges>;
  try {
    changes = parseChanges(flags);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const ctx = context(values, values, env, stdout, stderr);
  return printWrite(ctx, "modified", await ctx.api.modify(dn, changes, ctx.call));
}

async function remove(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...commonOptions, ...writeOptions, subtree: { type: "boolean" } },
    allowPositionals: true,
  });
  if (values.help === true) return help(stdout, "delete");
  const dn = oneDn(positionals, "DN");
  const ctx = context(values, values, env, stdout, stderr);
  return printWrite(ctx, "deleted", await ctx.api.delete(dn, values.subtree === true, ctx.call));
}

async function move(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...commonOptions,
      ...writeOptions,
      "new-rdn": { type: "string" },
      "new-parent": { type: "string" },
      "keep-old-rdn": { type: "boolean" },
    },
    allowPositionals: true,
  });
  if (values.help === true) return help(stdout, "move");
  const dn = oneDn(positionals, "DN");
  if (values["new-rdn"] === undefined && values["new-parent"] === undefined)
    throw new UsageError("give --new-rdn, --new-parent or both");
  const ctx = context(values, values, env, stdout, stderr);
  const request = {
    newRdn: values["new-rdn"] ?? firstRdn(dn),
    ...(values["new-parent"] === undefined ? {} : { newParent: values["new-parent"] }),
    ...(values["keep-old-rdn"] === true ? { deleteOldRdn: false } : {}),
  };
  return printWrite(ctx, "moved to", await ctx.api.rename(dn, request, ctx.call));
}

function scopeOf(text: string | undefined): "base" | "one" | "sub" | undefined {
  if (text === undefined || text === "base" || text === "one" || text === "sub") return text;
  throw new UsageError(`--scope must be base, one or sub, not '${text}'`);
}

async function search(args: string[], env: Environment, stdout: Output, stderr: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...commonOptions,
      filter: { type: "string" },
      scope: { type: "string" },
      attributes: { type: "string" },
      "size-limit": { type: "string" },
    },
    allowPositionals: true,
  });
  if (values.help === true) return help(stdout, "search");
  const base = oneDn(positionals, "BASE");
  const scope = scopeOf(values.scope);
  const sizeLimit = integerFlag(values["size-limit"], "--size-limit", 1, searchSizeLimitMax);
  const attributes = attributeNames(values.attributes);
  const ctx = context(values, {}, env, stdout, stderr);
  const pages = ctx.api.searchPages(
    {
      base,
      ...(scope === undefined ? {} : { scope }),
      ...(values.filter === undefined ? {} : { filter: values.filter }),
      ...(attributes === undefined ? {} : { attributes }),
      ...(sizeLimit === undefined ? {} : { sizeLimit }),
    },
    ctx.call,
  );
  // Page by page, as formatEntries and JSON.stringify({ entries, truncated, session }) would
  // print the whole result: up to pagedSearchEntriesMax entries are never held at once.
  let count = 0;
  let truncated = false;
  let session: string | null = null;
  if (ctx.json) await written(stdout, '{"entries":[');
  for await (const page of pages) {
    const text = ctx.json
      ? page.entries.map((entry, index) => `${count + index > 0 ? "," : ""}${JSON.stringify(entry)}`).join("")
      : page.entries.map((entry) => `${formatEntry(entry)}\n\n`).join("");
    await written(stdout, text);
    count += page.entries.length;
    truncated = page.truncated;
    session = page.session;
  }
  await written(
    stdout,
    ctx.json
      ? `],"truncated":${truncated},"session":${JSON.stringify(session)}}\n`
      : formatEntryCount(count, truncated),
  );
  return 0;
}

/** Writes `text`, then waits while the stream's buffer is full (a slow pipe holds the search back). */
async function written(out: Output, text: string): Promise<void> {
  if (text === "") return;
  const stream = out as Output & { once?: (event: "drain", listener: () => void) => unknown };
  if (out.write(text) === false && typeof stream.once === "function")
    await new Promise<void>((resolve) => stream.once?.("drain", resolve));
}

function help(stdout: Output, name: EntryCommandName): number {
  stdout.write(`${usages[name]}\n`);
  return 0;
}

const runners: Record<
  EntryCommandName,
  (args: string[], env: Environment, stdout: Output, stderr: Output) => Promise<number>
> = { get, add, modify, delete: remove, move, search };

/** Runs one entry command; resolves with its exit code (see cli-support.ts). */
export function entryCommand(
  name: EntryCommandName,
  args: readonly string[],
  stdout: Output,
  stderr: Output,
  env: Environment = process.env,
): Promise<number> {
  return reportFailures(name, usages[name].split("\n")[0] ?? "", stderr, () =>
    runners[name]([...args], env, stdout, stderr),
  );
}
