/**
 * Children that must not outlive the process that started them: the embedded redis-server and the workers of
 * `sri up`, and every server a test starts. A parent killed with SIGKILL, or a test file ended by its runner, runs
 * no clean-up of its own, so on Linux the child is started through util-linux's `setpriv --pdeathsig`: the kernel
 * sends it `signal` when its parent dies, whatever killed the parent. setpriv execs the program (same PID), so
 * stopping it by PID works as before. Elsewhere (macOS) the command is returned unchanged.
 */
import { spawnSync } from 'node:child_process';

let setprivPath: string | null | undefined;

function setpriv(): string | null {
  if (setprivPath === undefined) {
    setprivPath = null;
    if (process.platform === 'linux') {
      const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
      if (r.status === 0 && r.stdout.includes('--pdeathsig')) setprivPath = 'setpriv';
    }
  }
  return setprivPath;
}

/**
 * The `[file, args]` to spawn so the program receives `signal` when this process dies. SIGTERM lets redis-server
 * write its append-only file and a worker hand its jobs back; the caller still stops it properly when it can.
 */
export function boundToParent(file: string, args: readonly string[], signal: 'TERM' | 'KILL' = 'TERM'): [string, string[]] {
  const wrapper = setpriv();
  return wrapper ? [wrapper, ['--pdeathsig', signal, '--', file, ...args]] : [file, [...args]];
}
