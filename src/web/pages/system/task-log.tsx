/**
 * An ops task's live log: Server-Sent Events from GET /api/operator/system/tasks/{id}/logs (the operator's session
 * cookie goes with them; EventSource reconnects by itself with Last-Event-ID), as the job page follows a job's log.
 * The region is a live region (role="log", aria-live="polite"): a screen reader hears new lines as they come, and
 * the end of the log is said too. A finished task's log is answered the same way while Redis keeps it.
 */
import { useEffect, useRef } from 'react';
import { useTranslation } from 'react-i18next';
import { useFormat } from '../../lib/format.ts';
import { useLiveLines } from '../../lib/live-lines.ts';

export function TaskLog({ taskId, onEnd }: { taskId: string; onEnd: () => void }) {
  const { t } = useTranslation();
  const f = useFormat();
  const { lines, state } = useLiveLines(`/api/operator/system/tasks/${encodeURIComponent(taskId)}/logs`, onEnd);
  const box = useRef<HTMLDivElement>(null);
  const atEnd = useRef(true);
  // Following: each new line scrolls the log to its end, unless the reader scrolled up, until they scroll back down.
  useEffect(() => {
    const el = box.current;
    if (el && atEnd.current) el.scrollTop = el.scrollHeight;
  }, [lines.length]);
  return (
    <section aria-labelledby="task-log-heading">
      <h3 id="task-log-heading">{t('system.log')} {state === 'live' && <span className="badge badge-running">{t('job.logLive')}</span>}</h3>
      <div
        ref={box} className="ops-log" role="log" aria-live="polite" aria-labelledby="task-log-heading" tabIndex={0}
        onScroll={(e) => { const el = e.currentTarget; atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24; }}
      >
        {lines.map((l, i) => (
          <div key={i} className={`line level-${l.level}`}>
            <span className="muted">{l.ts ? f.time(l.ts) : ''}</span> <span className={`level level-${l.level}`}>{l.level.toUpperCase()}</span> <span className="message">{l.message}</span>
          </div>
        ))}
      </div>
      {lines.length === 0 && state === 'live' && <p className="muted">{t('system.logWaiting')}</p>}
      <p role="status" className="muted">
        {state === 'ended' ? t('system.logEnded') : state === 'failed' ? t('system.logFailed') : ''}
      </p>
    </section>
  );
}
