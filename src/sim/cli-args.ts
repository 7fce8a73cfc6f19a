import { parseArgs } from "node:util";

/** Argument checks shared by the simulator commands: a bad argument exits 2 with the usage. */
export function argumentFailure(command: string, usage: string): (message: string) => never {
  return (message) => {
    process.stderr.write(`${command}: ${message}\n${usage}\n`);
    process.exit(2);
  };
}

export function integerArgument(
  fail: (message: string) => never,
): (text: string | undefined, name: string, min: number, max: number) => number | undefined {
  return (text, name, min, max) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max)
      fail(`${name} must be an integer from ${min} to ${max}`);
    return value;
  };
}

/** Parses string options strictly; an unknown or malformed one fails with the usage. */
export function parseOptions(
  fail: (message: string) => never,
  names: readonly string[],
): Record<string, string | undefined> {
  const options = Object.fromEntries(names.map((name) => [name, { type: "string" as const }]));
  try {
    return parseArgs({ options, strict: true }).values as Record<string, string | undefined>;
  } catch (error) {
    return fail((error as Error).message);
  }
}

/** `--seeds N [--from S]` or `--seed S`: the seeds to run, and whether one was named. */
export function seedChoice(
  values: Record<string, string | undefined>,
  fail: (message: string) => never,
  seedsMax: number,
): { readonly seeds: number[]; readonly single: boolean } {
  const integer = integerArgument(fail);
  const count = integer(values.seeds, "--seeds", 1, seedsMax);
  const single = integer(values.seed, "--seed", 0, 2 ** 31);
  const from = integer(values.from, "--from", 0, 2 ** 31) ?? 1;
  if (count === undefined && single !== undefined) return { seeds: [single], single: true };
  if (count === undefined || single !== undefined) return fail("say either --seeds N or --seed S");
  return { seeds: Array.from({ length: count }, (_, index) => from + index), single: false };
}

/** `--canary NAME`, one of `known`. */
export function canaryChoice<T extends string>(
  value: string | undefined,
  known: readonly T[],
  fail: (message: string) => never,
): T | null {
  if (value === undefined) return null;
  if (!known.includes(value as T)) fail(`unknown canary ${value}; known: ${known.join(", ")}`);
  return value as T;
}

/**
 * The last line (one JSON object) and the exit code: 1 on any violation, or with a canary,
 * 1 when the planted defect went undetected.
 */
export function finishRun(
  run: { readonly seeds: number; readonly violations: number; readonly canary: string | null },
  figures: Record<string, number>,
): void {
  const caught = run.violations > 0;
  const canaryCaught = run.canary === null ? null : caught;
  process.stdout.write(`${JSON.stringify({ ...run, canaryCaught, ...figures })}\n`);
  process.exitCode = run.canary === null ? (caught ? 1 : 0) : caught ? 0 : 1;
}
