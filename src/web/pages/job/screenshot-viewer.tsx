/**
 * A screenshot opened from the job's gallery, full size in a modal dialog (Escape or the close button closes it,
 * and focus goes back to the thumbnail). The screenshot's link is a presigned S3 link served as a download
 * (`Content-Disposition: attachment`, src/shared/s3.ts: evidence never opens inline on the shared S3 origin), so a
 * new tab would only download it; an <img> shows it whatever the disposition, and a link in the dialog downloads it.
 */
import { useEffect, useRef } from 'react';
import { useTranslation } from 'react-i18next';

export interface Screenshot { name: string; url: string }

export function ScreenshotViewer({ shot, onClose }: { shot: Screenshot | null; onClose: () => void }) {
  const { t } = useTranslation();
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && shot && !d.open) d.showModal();
  }, [shot]);
  if (!shot) return null;
  return (
    <dialog ref={dialog} className="viewer" aria-labelledby="viewer-heading" onClose={onClose}>
      <div className="page-head">
        <h2 id="viewer-heading">{shot.name}</h2>
        <button type="button" onClick={() => dialog.current?.close()}>{t('job.closeScreenshot')}</button>
      </div>
      <img src={shot.url} alt={t('job.screenshotAlt', { name: shot.name })} />
      <p><a href={shot.url} download={shot.name}>{t('job.downloadScreenshot', { name: shot.name })}</a></p>
    </dialog>
  );
}
