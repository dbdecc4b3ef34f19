/**
 * The job's log. While the job runs: Server-Sent Events from GET /api/jobs/{id}/logs (the session cookie goes with
 * them; EventSource reconnects by itself with Last-Event-ID), one row per line, level and stream told apart by
 * words and not colour alone, the newest line kept in view (following). Once the job has finished: its stored
 * execution.log.
 */
import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../../api/client.ts';
import { useFormat } from '../../lib/format.ts';
import { useLiveLines, type LogLine } from '../../lib/live-lines.ts';


/** A line of execution.log: `2026-01-05T10:00:00.000Z INFO   message` or `… CONSOLE:warn message`. */
export function parseLogLine(text: string): LogLine {
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (\S+)\s+([\s\S]*)$/.exec(text);
  if (!m) return { level: 'info', stream: 'script', message: text };
  const tag = m[2]!;
  const ts = Date.parse(m[1]!);
  if (tag.startsWith('CONSOLE:')) return { ts, level: tag.slice(8).toLowerCase(), stream: 'console', message: m[3]! };
  return { ts, level: tag.toLowerCase(), stream: 'script', message: m[3]! };
}

export function JobLog({ jobId, final }: { jobId: string; final: boolean }) {
  const { t } = useTranslation();
  const f = useFormat();
  const followed = useLiveLines(final ? undefined : `/api/jobs/${encodeURIComponent(jobId)}/logs`);
  const live = { lines: followed.lines, ended: followed.state === 'ended' };
  const stored = useQuery({
    queryKey: ['jobs', jobId, 'log'],
    enabled: final,
    queryFn: async () => {
      const r = await api.GET('/api/jobs/{id}/logs', { params: { path: { id: jobId }, query: { follow: 'false' } }, parseAs: 'text' });
      return r.response.ok && typeof r.data === 'string' ? r.data.split('\n').filter((l) => l.trim()).map(parseLogLine) : [];
    },
  });
  // Lines seen live stay on screen after the job finishes, until the stored log is read.
  const lines = final && stored.data ? stored.data : live.lines;
  // Following: while the job runs, each new line scrolls the log to its end — unless the reader scrolled up to read
  // an earlier line, until they scroll back down.
  const box = useRef<HTMLDivElement>(null);
  const atEnd = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && !final && atEnd.current) el.scrollTop = el.scrollHeight;
  }, [lines.length, final]);
  return (
    <section>
      <h2 id="log-heading">{t('job.log')} {!final && !live.ended && <span className="badge badge-running">{t('job.logLive')}</span>}</h2>
      {lines.length === 0 ? <p>{t('job.logEmpty')}</p> : (
        <div
          ref={box} className="table-wrap log" role="region" aria-labelledby="log-heading" tabIndex={0}
          onScroll={(e) => { const el = e.currentTarget; atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24; }}
        >
          <table>
            <thead>
              <tr>
                <th scope="col">{t('job.time')}</th>
                <th scope="col">{t('job.level')}</th>
                <th scope="col">{t('job.stream')}</th>
                <th scope="col">{t('job.message')}</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((l, i) => (
                <tr key={i} className={`level-${l.level}`}>
                  <td>{l.ts ? f.time(l.ts) : ''}</td>
                  <td><span className={`level level-${l.level}`}>{l.level.toUpperCase()}</span></td>
                  <td>{l.stream}</td>
                  <td className="message">{l.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(live.ended || (final && stored.isSuccess)) && <p className="muted">{t('job.logEnded')}</p>}
    </section>
  );
}
