/** The ops tasks as the system page reads them: the generated types, and what the page works out of the audit. */
import type { components } from '../../api/schema.d.ts';

export type OpsTask = components['schemas']['OpsTask'];

export const isFinalTask = (t: Pick<OpsTask, 'status'>) => t.status === 'done' || t.status === 'failed' || t.status === 'interrupted';

/**
 * The version running, as the newest task that knows it says: a finished update its target, an update rolled back
 * healthy the version before it, a check what it found. An interrupted update leaves it unknown (the services may be
 * half-started): a new check tells. Undefined: not known yet.
 */
export function runningVersion(tasks: readonly OpsTask[]): string | undefined {
  for (const t of tasks) {
    if (!isFinalTask(t)) continue;
    if (t.status === 'interrupted') return undefined;
    const d = t.details;
    if (t.kind === 'system.update') {
      if (t.status === 'done' && d?.targetVersion) return d.targetVersion;
      if (t.status === 'failed' && d?.rolledBack && d.rollbackHealthy && d.runningVersion) return d.runningVersion;
      continue;
    }
    if (t.status === 'done' && d?.runningVersion) return d.runningVersion;
  }
  return undefined;
}

/** The newest finished check: what the registry offered then. */
export const latestCheck = (tasks: readonly OpsTask[]) => tasks.find((t) => t.kind === 'system.check' && t.status === 'done');

/** How long the task ran (ms), once it has started; until now while it runs. */
export function taskDurationMs(t: OpsTask, now = Date.now()): number | undefined {
  if (!t.startedAt) return undefined;
  return (t.finishedAt ? Date.parse(t.finishedAt) : now) - Date.parse(t.startedAt);
}
