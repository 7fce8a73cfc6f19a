import type { LdifAttributes, LdifItem, LdifModification, LdifRecord, ModifyOperation } from "./record.ts";

/**
 * An incremental LDIF parser (RFC 2849): fed one physical line at a time (without its line
 * ending), it yields each record once the blank line after it (or the end) arrives, with the
 * line the record starts on. A bad record becomes an error item naming the offending line and
 * the parser carries on with the next record, so one typo does not lose a file. An LDIF
 * version other than 1 is the exception: it refuses the whole file (one fatal error item).
 *
 * Lenient where tools commonly are: UTF-8 in plain values (the RFC asks for base64 beyond
 * ASCII), a missing final `-` in a modify record, content and change records in one file.
 */

/**
 * One logical line (folded lines joined) at most, in characters (in bytes when the parser is
 * fed bytes, as the file reader does); a longer one makes its record bad.
 */
export const logicalLineCharsMax = 16 * 1024 * 1024;
/** Logical lines in one record at most. */
export const recordLinesMax = 100_000;

/** Resolves a `:<` URL value to its bytes, or says why it cannot. */
export type UrlReader = (url: string) => Uint8Array | { readonly error: string };

export interface ParserOptions {
  /** Without one, `:<` values are refused. */
  readonly readUrl?: UrlReader;
  /**
   * Each line pushed holds bytes, one per character (a Buffer read as `latin1`), to be decoded
   * as UTF-8 once its folded lines are joined: a fold may split a character, and bytes that are
   * not UTF-8 make the record bad rather than turn into U+FFFD. The file reader feeds bytes.
   */
  readonly byteLines?: boolean;
}

interface LogicalLine {
  readonly line: number;
  text: string;
}

/** One `type: value` line, value decoded. */
interface AttrValue {
  readonly line: number;
  readonly type: string;
  readonly value: string;
}

class RecordError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

/** A file the parser cannot read at all: its records are not to be guessed at. */
class FileError extends RecordError {}

const attributeDescription = /^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)(?:;[A-Za-z0-9-]+)*$/;
const base64Text = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// ignoreBOM keeps a leading U+FEFF: it is part of a base64 value, not a byte order mark to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** A byte order mark at the start of a file (Windows editors write one): not part of the first line. */
const byteOrderMark = { text: "\uFEFF", bytes: "\xEF\xBB\xBF" } as const;

export class LdifParser {
  private lineNumber = 0;
  private lines: LogicalLine[] = [];
  private current: LogicalLine | null = null;
  private inComment = false;
  /** Why the record being read is already bad (the rest of it is skipped). */
  private broken: RecordError | null = null;
  private firstParagraph = true;
  /** The first line of the paragraph that holds only spaces (a continuation), for a hint. */
  private spacesOnlyLine: number | null = null;
  /** Set once a FileError is reported: every later line is ignored. */
  private refused = false;

  constructor(private readonly options: ParserOptions = {}) {}

  /** The number of physical lines fed so far. */
  get linesRead(): number {
    return this.lineNumber;
  }

  push(physical: string): LdifItem[] {
    this.lineNumber++;
    if (this.refused) return [];
    const text = this.withoutByteOrderMark(physical.endsWith("\r") ? physical.slice(0, -1) : physical);
    if (text === "") return this.endParagraph();
    if (this.broken !== null) return [];
    if (text.startsWith(" ")) {
      this.continueLine(text);
    } else if (text.startsWith("#")) {
      this.finishLine();
      this.inComment = true;
    } else {
      this.finishLine();
      this.inComment = false;
      this.current = { line: this.lineNumber, text };
      if (text.length > logicalLineCharsMax) this.broken = this.tooLong(this.lineNumber);
    }
    return [];
  }

  private tooLong(line: number): RecordError {
    const unit = this.options.byteLines === true ? "bytes" : "characters";
    return new RecordError(line, `a line longer than ${logicalLineCharsMax} ${unit}`);
  }

  private withoutByteOrderMark(text: string): string {
    const mark = this.options.byteLines === true ? byteOrderMark.bytes : byteOrderMark.text;
    return this.lineNumber === 1 && text.startsWith(mark) ? text.slice(mark.length) : text;
  }

  /** Call once after the last line. */
  end(): LdifItem[] {
    return this.refused ? [] : this.endParagraph();
  }

  private continueLine(text: string): void {
    if (this.inComment) return;
    // Only spaces: most likely meant as the empty line between records (see endParagraph).
    if (text.trim() === "") this.spacesOnlyLine ??= this.lineNumber;
    if (this.current === null) {
      this.broken = new RecordError(this.lineNumber, "a continuation line with no line to continue");
    } else if (this.current.text.length + text.length > logicalLineCharsMax) {
      this.broken = this.tooLong(this.current.line);
    } else {
      this.current.text += text.slice(1);
    }
  }

  private finishLine(): void {
    const line = this.current;
    this.current = null;
    if (line === null || this.broken !== null) return;
    if (this.options.byteLines === true) this.decodeLine(line);
    if (this.broken !== null) return;
    if (this.lines.length >= recordLinesMax)
      this.broken = new RecordError(line.line, `a record of more than ${recordLinesMax} lines`);
    else this.lines.push(line);
  }

  /** A line fed as bytes, as text; bytes that are not UTF-8 make the record bad. */
  private decodeLine(line: LogicalLine): void {
    try {
      line.text = utf8.decode(Buffer.from(line.text, "latin1"));
    } catch {
      this.broken = new RecordError(line.line, "the line is not UTF-8 text (an LDIF file is UTF-8)");
    }
  }

  private endParagraph(): LdifItem[] {
    this.finishLine();
    const lines = this.lines;
    const broken = this.broken;
    const spacesOnly = this.spacesOnlyLine;
    this.lines = [];
    this.broken = null;
    this.inComment = false;
    this.spacesOnlyLine = null;
    if (broken !== null) {
      this.firstParagraph = false;
      return [{ kind: "error", line: broken.line, message: broken.message }];
    }
    if (lines.length === 0) return [];
    try {
      const first = this.firstParagraph;
      this.firstParagraph = false;
      const records = first ? skipVersion(lines) : lines;
      if (records.length === 0) return [];
      const start = records[0]?.line ?? 0;
      return [{ kind: "record", line: start, record: this.parseRecord(records) }];
    } catch (error) {
      if (error instanceof FileError) {
        this.refused = true;
        return [{ kind: "error", line: error.line, message: error.message, fatal: true }];
      }
      if (error instanceof RecordError)
        return [{ kind: "error", line: error.line, message: withSpacesOnlyHint(error.message, spacesOnly) }];
      throw error;
    }
  }

  private parseRecord(lines: readonly LogicalLine[]): LdifRecord {
    const values = lines.map((line) => (line.text === "-" ? separator(line.line) : this.attrValue(line)));
    const [dnLine, ...rest] = values;
    if (dnLine === undefined || dnLine.type.toLowerCase() !== "dn")
      throw new RecordError(lines[0]?.line ?? 0, "a record must start with a dn: line");
    const dn = dnLine.value;
    const control = rest.find((value) => value?.type.toLowerCase() === "control");
    if (control !== undefined) throw new RecordError(control.line, "control: lines are not supported");
    const [typeLine, ...body] = rest;
    if (typeLine === undefined || typeLine.type.toLowerCase() !== "changetype") {
      return { kind: "content", dn, attributes: attributesOf(rest, "a content record") };
    }
    const changeType = typeLine.value.toLowerCase();
    switch (changeType) {
      case "add":
        return { kind: "add", dn, attributes: attributesOf(body, "an add record") };
      case "delete":
        if (body.length > 0) throw new RecordError(typeLine.line, "a delete record has no other lines");
        return { kind: "delete", dn };
      case "modify":
        return { kind: "modify", dn, changes: modificationsOf(body, typeLine.line) };
      case "modrdn":
      case "moddn":
        return modRdnOf(dn, body, typeLine.line);
      default:
        throw new RecordError(typeLine.line, `unknown changetype '${typeLine.value}'`);
    }
  }

  private attrValue(line: LogicalLine): AttrValue {
    const colon = line.text.indexOf(":");
    if (colon <= 0) throw new RecordError(line.line, "expected 'type: value'");
    const type = line.text.slice(0, colon);
    if (!attributeDescription.test(type))
      throw new RecordError(line.line, `'${type}' is not an attribute description`);
    const marker = line.text[colon + 1];
    if (marker === ":") return { line: line.line, type, value: decodeBase64(line, colon + 2) };
    if (marker === "<") return { line: line.line, type, value: this.urlValue(line, colon + 2) };
    return { line: line.line, type, value: line.text.slice(colon + 1).replace(/^ +/, "") };
  }

  private urlValue(line: LogicalLine, from: number): string {
    const url = line.text.slice(from).trim();
    if (this.options.readUrl === undefined)
      throw new RecordError(line.line, `URL values (:< ${url}) are not accepted here`);
    const read = this.options.readUrl(url);
    if ("error" in read) throw new RecordError(line.line, read.error);
    return textOf(read, line.line);
  }
}

/** A `-` line, which ends one modification of a modify record. */
const separatorType = "-";

function separator(line: number): AttrValue {
  return { line, type: separatorType, value: "" };
}

function skipVersion(lines: LogicalLine[]): LogicalLine[] {
  const [first, ...rest] = lines;
  if (first === undefined || !/^version:/i.test(first.text)) return lines;
  const version = first.text.slice("version:".length).trim();
  if (version !== "1") throw new FileError(first.line, `unsupported LDIF version '${version}' (only 1)`);
  return rest;
}

/**
 * A `::` value. Spaces and tabs after it are dropped: RFC 2849's BASE64-STRING has none, but
 * they cannot be part of a base64 value, so they change nothing (an editor's leftovers);
 * python-ldap and Perl's Net::LDAP skip them, OpenLDAP after a padded value. Inside the value,
 * a space still makes it not base64.
 */
function decodeBase64(line: LogicalLine, from: number): string {
  const text = line.text
    .slice(from)
    .replace(/^ +/, "")
    .replace(/[ \t]+$/, "");
  if (!base64Text.test(text)) throw new RecordError(line.line, "the value after '::' is not base64");
  return textOf(Buffer.from(text, "base64"), line.line);
}

function textOf(bytes: Uint8Array, line: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new RecordError(line, "the value is not UTF-8 text (Plexus holds text values only)");
  }
}

/**
 * A second `dn:` in one record, after a line that holds only spaces: RFC 2849 reads such a line
 * as the continuation of the line before it, so the two records became one. Say so, since the
 * error otherwise points at the second `dn:` and the stray line is invisible.
 */
function withSpacesOnlyHint(message: string, spacesOnlyLine: number | null): string {
  if (spacesOnlyLine === null || !message.startsWith("'dn:' out of place")) return message;
  return `${message} (line ${spacesOnlyLine} holds only spaces: in LDIF that continues the line before it, it does not end the record; make it empty)`;
}

/** `type: value` lines as value lists by type; types compare case-insensitively, first spelling kept. */
function attributesOf(lines: readonly AttrValue[], what: string): LdifAttributes {
  const attributes: LdifAttributes = {};
  const spelling = new Map<string, string>();
  for (const line of lines) {
    const key = line.type.toLowerCase();
    if (key === separatorType || key === "changetype" || key === "dn")
      throw new RecordError(line.line, `'${line.type}:' out of place in ${what}`);
    // Through the map, never `attributes[type] ?? …`: a type named `constructor` is no value list.
    const known = spelling.get(key);
    if (known === undefined) {
      spelling.set(key, line.type);
      attributes[line.type] = [line.value];
    } else {
      attributes[known]?.push(line.value);
    }
  }
  return attributes;
}

const operations: readonly ModifyOperation[] = ["add", "delete", "replace"];

/** `add: type` / `delete: type` / `replace: type`, its values, then `-`; the last `-` may be missing. */
function modificationsOf(lines: readonly AttrValue[], changeTypeLine: number): LdifModification[] {
  const changes: LdifModification[] = [];
  let open: LdifModification | null = null;
  for (const line of lines) {
    if (line.type === separatorType) {
      if (open === null) throw new RecordError(line.line, "a '-' with no modification before it");
      changes.push(open);
      open = null;
      continue;
    }
    if (open === null) {
      const operation = operations.find((name) => name === line.type.toLowerCase());
      if (operation === undefined)
        throw new RecordError(line.line, `expected add:, delete: or replace:, not '${line.type}:'`);
      if (!attributeDescription.test(line.value))
        throw new RecordError(line.line, `'${line.value}' is not an attribute description`);
      open = { operation, attribute: line.value, values: [] };
    } else if (line.type.toLowerCase() === open.attribute.toLowerCase()) {
      open.values.push(line.value);
    } else {
      throw new RecordError(
        line.line,
        `'${line.type}:' inside the modification of ${open.attribute} (missing '-'?)`,
      );
    }
  }
  if (open !== null) changes.push(open);
  if (changes.length === 0) throw new RecordError(changeTypeLine, "a modify record with no modification");
  return changes;
}

function modRdnOf(dn: string, lines: readonly AttrValue[], changeTypeLine: number): LdifRecord {
  const [newRdn, deleteOldRdn, newSuperior, ...extra] = lines;
  const expect = (line: AttrValue | undefined, type: string, after: number): AttrValue => {
    if (line === undefined || line.type.toLowerCase() !== type)
      throw new RecordError(line?.line ?? after, `expected '${type}:'`);
    return line;
  };
  const rdn = expect(newRdn, "newrdn", changeTypeLine);
  const deleteOld = expect(deleteOldRdn, "deleteoldrdn", rdn.line);
  if (deleteOld.value !== "0" && deleteOld.value !== "1")
    throw new RecordError(deleteOld.line, "deleteoldrdn must be 0 or 1");
  const record = { kind: "modrdn" as const, dn, newRdn: rdn.value, deleteOldRdn: deleteOld.value === "1" };
  if (newSuperior === undefined) return record;
  const superior = expect(newSuperior, "newsuperior", deleteOld.line);
  const unexpected = extra[0];
  if (unexpected !== undefined) throw new RecordError(unexpected.line, "unexpected line after newsuperior:");
  return { ...record, newSuperior: superior.value };
}

/** Every item of an LDIF text held in memory (tests, small inputs). */
export function parseLdif(text: string, options: ParserOptions = {}): LdifItem[] {
  const parser = new LdifParser(options);
  const items: LdifItem[] = [];
  const lines = text.split("\n");
  // A final line ending does not start another (empty) line.
  if (lines.at(-1) === "") lines.pop();
  for (const line of lines) items.push(...parser.push(line));
  items.push(...parser.end());
  return items;
}
