import { useTranslation } from 'react-i18next';

const STATUSES = ['queued', 'running', 'retrying', 'done', 'failed', 'cancelled', 'dead', 'waiting_for_user'] as const;
export type JobStatusName = (typeof STATUSES)[number];
export const JOB_STATUSES: readonly JobStatusName[] = STATUSES;
export const isFinal = (s: string) => ['done', 'failed', 'cancelled', 'dead'].includes(s);

/** A job's status as a word (the colour only repeats it). */
export function StatusBadge({ status }: { status: string }) {
  const { t } = useTranslation();
  const known = (STATUSES as readonly string[]).includes(status) ? (status as JobStatusName) : undefined;
  return <span className={`badge badge-${known ?? 'unknown'}`}>{known ? t(`jobs.statuses.${known}`) : status}</span>;
}
