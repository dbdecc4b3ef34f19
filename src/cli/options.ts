/**
 * The CLI's conventions in one place:
 *   - exit codes: 0 success, 1 a runtime failure (`error CODE: message`, main.ts), 2 a usage error (an unknown command
 *     or option, a missing argument, an invalid option value: commander's `error: …` line and a hint);
 *   - numeric options go through one validated parser (`integerOption`): a whole number within a range, else a usage
 *     error naming the option, before anything runs (`--timeout abc` is refused, never read as NaN);
 *   - `--version` prints package.json's version.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from 'commander';

/** Exit code of a usage error (as POSIX utilities and most CLIs do); runtime failures exit 1. */
export const EXIT_USAGE = 2;

/** The project's name in package.json: `--version` reads the version next to it. */
const PACKAGE_NAME = 'sri-automation-platform';

/**
 * The version in the project's package.json, found upwards from this file: `src/cli/` in a checkout,
 * `dist/src/cli/` in a build (whose own dist/package.json only says `"type": "module"`, so the search goes on).
 */
export function cliVersion(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
      } catch { /* not this one */ }
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

/**
 * A parser for commander's `.option(flags, description, parser, default)`: the value must be a whole number (digits
 * only: no sign, decimals, exponent or spaces) from `min` to `max`. Anything else is commander's invalid-argument
 * error, which names the option: `error: option '--timeout <ms>' argument 'abc' is invalid. …` (exit 2).
 */
export function integerOption(min: number, max: number): (raw: string) => number {
  return (raw: string) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Give a whole number from ${min} to ${max}.`);
    }
    return n;
  };
}

/**
 * Like integerOption, or the word `none`: a limit that can be removed. `none` stays a string — commander turns a
 * parser's null into ''.
 */
export function integerOrNoneOption(min: number, max: number): (raw: string) => number | 'none' {
  const integer = integerOption(min, max);
  return (raw: string) => {
    if (raw === 'none') return 'none';
    try {
      return integer(raw);
    } catch {
      throw new InvalidArgumentError(`Give a whole number from ${min} to ${max}, or none.`);
    }
  };
}
