// A second reporter for node's test runner (scripts/run-tests.mjs passes it next to `spec`): it writes one JSON line
// per test file — the file, its wall time and whether it passed — to its destination, for run-tests.mjs to sort and
// print at the end. The runner runs every file in a process of its own and reports the file itself as a test at
// nesting 0 whose name is the file's path relative to the working directory: its duration is the file's whole wall
// time (process start, imports, hooks, tests, exit), which the durations of the tests inside leave out.
import { resolve } from 'node:path';

export default async function* durations(source) {
  for await (const event of source) {
    // test:complete, not test:pass/test:fail: the runner reports a passing file only as complete.
    if (event.type !== 'test:complete') continue;
    const { nesting, name, file, details } = event.data;
    if (nesting !== 0 || file === undefined || resolve(name) !== file) continue;
    yield `${JSON.stringify({ file: name, ms: Math.round(details.duration_ms), passed: details.passed })}\n`;
  }
}
