/**
 * One job: its summary, what went wrong and what to do, cancel or retry, the live log, the screenshots (a gallery;
 * each opens full size in a dialog), every file with its size, type and SHA-256, and the parsed data as tables with a
 * CSV export. Read again every 2 s until the job has finished.
 */
import { useMutation, useQuery } from '@tanstack/react-query';
import { useCallback, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { Confirm } from '../../components/confirm.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { isFinal, StatusBadge } from '../../components/status-badge.tsx';
import { useFormat } from '../../lib/format.ts';
import { useProviders } from '../providers/providers-page.tsx';
import { BlockerNotice } from './blocker-notice.tsx';
import { DataTables } from './data-tables.tsx';
import { JobLog } from './job-log.tsx';
import { LiveView } from './live-view.tsx';
import { ScreenshotViewer, type Screenshot } from './screenshot-viewer.tsx';

const LIVE_REFRESH_MS = 2000;

const HINTED = ['SESSION_NOT_FOUND', 'NAVIGATION_ERROR', 'SCRIPT_ERROR', 'EXECUTION_TIMEOUT', 'CANCELLED', 'BROWSER_ERROR', 'JOB_POISONED',
  'HANDOFF_ABANDONED', 'HANDOFF_TIMEOUT'] as const;
type Hinted = (typeof HINTED)[number];
const isHinted = (c: string): c is Hinted => (HINTED as readonly string[]).includes(c);

export default function JobPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const { id = '' } = useParams();
  const providers = useProviders();
  const job = useQuery({
    queryKey: ['jobs', id],
    queryFn: () => ok(api.GET('/api/jobs/{id}', { params: { path: { id } } })),
    refetchInterval: (q) => (q.state.data && isFinal(q.state.data.job.status) ? false : LIVE_REFRESH_MS),
  });
  const [notice, setNotice] = useState('');
  const [viewing, setViewing] = useState<Screenshot | null>(null);
  const [confirmingCancel, setConfirmingCancel] = useState(false);
  const cancel = useMutation({
    mutationFn: () => ok(api.POST('/api/jobs/{id}/cancel', { params: { path: { id } } })),
    onSuccess: () => { setConfirmingCancel(false); setNotice(t('job.cancelled')); void job.refetch(); },
  });
  const retry = useMutation({
    mutationFn: () => ok(api.POST('/api/jobs/{id}/retry', { params: { path: { id } } })),
    onSuccess: () => { setNotice(t('job.retried')); void job.refetch(); },
  });

  // Stable, so the live view's event stream is not opened again at every render.
  const refetchJob = useCallback(() => { void job.refetch(); }, [job.refetch]);
  const title = t('job.title', { id: id.slice(0, 8) });
  if (job.isPending) return <Page title={title}><Loading /></Page>;
  if (job.isError) return <Page title={title}><ErrorMessage error={job.error} onRetry={() => void job.refetch()} /></Page>;
  const j = job.data.job;
  const final = isFinal(j.status);
  const screenshots = j.artifacts.filter((a) => a.kind === 'screenshot');
  // A flow or run with `record` (docs/scripts.md "Recordings"): the page's video and its trace.
  const video = j.artifacts.find((a) => a.kind === 'video');
  const trace = j.artifacts.find((a) => a.kind === 'trace');
  const providerName = providers.data?.providers.find((p) => p.id === j.providerId)?.displayName ?? j.providerId;
  return (
    <Page title={title} actions={(
      <>
        {!final && !confirmingCancel && <button type="button" className="danger" onClick={() => setConfirmingCancel(true)}>{t('job.cancel')}</button>}
        {(j.status === 'failed' || j.status === 'dead') && <button type="button" className="primary" disabled={retry.isPending} onClick={() => retry.mutate()}>{t('job.retry')}</button>}
      </>
    )}>
      <p><Link to="/jobs">{t('job.back')}</Link></p>
      {!final && confirmingCancel && (
        <Confirm question={t('job.confirmCancel')} confirmLabel={t('job.confirmCancelYes')} busy={cancel.isPending}
          onConfirm={() => cancel.mutate()} onCancel={() => setConfirmingCancel(false)} />
      )}
      <p role="status" className="notice">{notice}</p>
      {cancel.isError && <ErrorMessage error={cancel.error} />}
      {retry.isError && <ErrorMessage error={retry.error} />}
      <section className="card">
        <h2 id="summary-heading">{t('job.summary')}</h2>
        <dl className="facts">
          <dt>{t('jobs.status')}</dt><dd><StatusBadge status={j.status} />{j.waiting && (
            <span className="waiting-reason"> {t(`job.waiting.${j.waiting.reason}`, { until: f.dateTime(j.waiting.until) })}</span>
          )}</dd>
          <dt>{t('jobs.provider')}</dt><dd>{providerName}</dd>
          <dt>{t('jobs.flowVersion')}</dt><dd>{j.flowVersion}</dd>
          <dt>{t('jobs.attempt')}</dt><dd>{j.maxAttempts === null ? j.attempt : t('jobs.attemptOf', { attempt: j.attempt, max: j.maxAttempts })}</dd>
          <dt>{t('jobs.created')}</dt><dd>{f.dateTime(j.createdAt)}</dd>
          <dt>{t('jobs.finished')}</dt><dd>{f.dateTime(j.finishedAt)}</dd>
          <dt>{t('jobs.duration')}</dt><dd>{f.durationMs(j.duration)}</dd>
        </dl>
      </section>
      {j.error && (
        <section className="card alert-error">
          <h2 id="error-heading">{t('job.error')}</h2>
          <p><code>{j.error.code}</code> {j.error.message}</p>
          <h3>{t('job.whatToDo')}</h3>
          <p>{isHinted(j.error.code) ? t(`job.hints.${j.error.code}`) : t('job.hints.default')}</p>
        </section>
      )}
      {j.blocker && <BlockerNotice blocker={j.blocker} />}
      {j.status === 'waiting_for_user' && <LiveView jobId={j.id} onAnswered={refetchJob} />}
      <JobLog jobId={j.id} final={final} />
      <section>
        <h2 id="screens-heading">{t('job.screenshots')}</h2>
        {screenshots.length === 0 ? <p>{t('job.noScreenshots')}</p> : (
          <ul className="gallery">
            {screenshots.map((s) => (
              <li key={s.name}>
                <figure>
                  <a
                    href={s.url}
                    onClick={(e) => {
                      // A plain click opens the viewer; with a modifier the browser does what it does with links.
                      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
                      e.preventDefault();
                      setViewing({ name: s.name, url: s.url });
                    }}
                  >
                    <img src={s.url} alt={t('job.screenshotAlt', { name: s.name })} loading="lazy" />
                  </a>
                  <figcaption>{s.name}</figcaption>
                </figure>
              </li>
            ))}
          </ul>
        )}
        <ScreenshotViewer shot={viewing} onClose={() => setViewing(null)} />
      </section>
      {(video || trace) && (
        <section>
          <h2 id="recording-heading">{t('job.recordings')}</h2>
          {video && <video controls preload="metadata" src={video.url} aria-label={t('job.videoLabel', { name: video.name })} className="recording" />}
          {trace && <p><a href={trace.url} download={trace.name}>{trace.name}</a> — {t('job.traceHint')}</p>}
        </section>
      )}
      <section>
        <h2 id="files-heading">{t('job.downloads')}</h2>
        {j.artifacts.length === 0 ? <p>{t('job.noDownloads')}</p> : (
          <div className="table-wrap" role="region" aria-labelledby="files-heading" tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('job.fileName')}</th>
                  <th scope="col">{t('job.fileType')}</th>
                  <th scope="col">{t('job.fileSize')}</th>
                  <th scope="col">{t('job.fileHash')}</th>
                </tr>
              </thead>
              <tbody>
                {j.artifacts.map((a) => (
                  <tr key={a.name}>
                    <td><a href={a.url} download={a.name}>{a.name}</a></td>
                    <td>{a.contentType ?? a.kind}</td>
                    <td>{f.bytes(a.bytes)}</td>
                    <td><code className="hash">{a.sha256 ?? '—'}</code></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <DataTables result={j.result} />
    </Page>
  );
}
