/**
 * Progress of the CLI's long waits, as the output wants it:
 *   - stdout a terminal: finished steps as lines, and a spinner (nanospinner) with what is being waited for and for
 *     how long, erased when the wait ends;
 *   - stdout a pipe or a file (scripts, CI logs), or TERM=dumb, or CI set: plain lines only — a waiting text is
 *     printed once each time it changes, never a control sequence;
 *   - `--json`: nothing at all (stdout is the JSON document; failures still go to stderr).
 */
import { createSpinner, type Spinner } from 'nanospinner';

export interface Progress {
  /** A line of output: a step that finished. It ends the wait before it (its spinner is erased). */
  line(text: string): void;
  /**
   * What is being waited for now (`job 1f…: running`). Call it as often as the wait polls: a terminal's spinner
   * shows the text with the time since it first appeared; elsewhere the text is printed when it changes.
   */
  waiting(text: string): void;
  /** The wait is over: the spinner is erased. Safe to call when nothing waits. */
  stop(): void;
}

export interface ProgressOptions {
  /** @default process.stdout */
  stream?: NodeJS.WriteStream;
  /** `--json`: print nothing. @default false */
  json?: boolean;
  /** @default process.env */
  env?: Record<string, string | undefined>;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Whether a spinner may draw on `stream`: a terminal that understands cursor control, outside CI, with a width.
 * A terminal of 0 columns (a pseudo-terminal nobody sized: `script` without a terminal, some `docker exec -t`)
 * gets lines: nanospinner divides by the width to know how many rows to erase.
 */
export function isInteractive(stream: NodeJS.WriteStream, env: Record<string, string | undefined> = process.env): boolean {
  // The same test nanospinner makes for fd 1 (it redraws only then), and no spinner frames into CI logs.
  return stream.isTTY === true && (stream.columns ?? 0) > 0 && env['TERM'] !== 'dumb' && !('CI' in env);
}

export function createProgress(opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stdout;
  if (opts.json) return { line: () => {}, waiting: () => {}, stop: () => {} };
  if (!isInteractive(stream, opts.env)) {
    let last: string | undefined;
    return {
      line: (text) => { last = undefined; stream.write(`${text}\n`); },
      waiting: (text) => { if (text !== last) stream.write(`   ${text}\n`); last = text; },
      stop: () => { last = undefined; },
    };
  }
  const now = opts.now ?? Date.now;
  let spinner: Spinner | undefined;
  let current: { text: string; since: number } | undefined;
  const label = () => (current ? `${current.text} (${Math.floor((now() - current.since) / 1000)} s)` : '');
  const stop = () => {
    // stop() with no argument erases the spinner's line and shows the cursor again; it prints nothing.
    if (spinner?.isSpinning()) spinner.stop();
    current = undefined;
  };
  return {
    line(text) {
      stop();
      stream.write(`${text}\n`);
    },
    waiting(text) {
      if (current?.text !== text) current = { text, since: now() };
      spinner ??= createSpinner(label(), { stream });
      if (spinner.isSpinning()) spinner.update({ text: label() });
      else spinner.start({ text: label() });
    },
    stop,
  };
}
