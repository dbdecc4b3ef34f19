/** "Run now": POST /api/run for a provider's active flow, with optional metadata; links to the new job. */
import { useMutation } from '@tanstack/react-query';
import { useId, useMemo, useRef, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { useDraft } from '../../lib/drafts.ts';

function parseMetadata(text: string): Record<string, unknown> | undefined | 'invalid' {
  if (!text.trim()) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : 'invalid';
  } catch {
    return 'invalid';
  }
}

export function RunForm({ providerId, draftKey }: { providerId: string; draftKey: string }) {
  const { t } = useTranslation();
  const uid = useId();
  const [metadata, setMetadata, clearMetadata] = useDraft(draftKey, '');
  const parsed = useMemo(() => parseMetadata(metadata), [metadata]);
  // One idempotency key per intent: a double click or a retried request starts one job, not two.
  const idempotencyKey = useRef(crypto.randomUUID());
  const run = useMutation({
    mutationFn: () => ok(api.POST('/api/run', {
      params: { header: { 'idempotency-key': idempotencyKey.current } },
      body: { providerId, ...(parsed && parsed !== 'invalid' ? { metadata: parsed } : {}) },
    })),
    onSuccess: () => {
      idempotencyKey.current = crypto.randomUUID();
      clearMetadata();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (parsed !== 'invalid') run.mutate();
  };
  return (
    <form className="form run-form" onSubmit={submit}>
      <div className="field">
        <label>
          <span>{t('flows.metadata')}</span>
          <textarea rows={2} value={metadata} onChange={(e) => setMetadata(e.target.value)} spellCheck={false}
            aria-invalid={parsed === 'invalid'} aria-describedby={`${uid}-help ${uid}-error`} />
        </label>
        <small id={`${uid}-help`}>{t('flows.metadataHelp')}</small>
        <small id={`${uid}-error`} className="field-error">{parsed === 'invalid' ? t('flows.metadataInvalid') : ''}</small>
      </div>
      {run.isError && <ErrorMessage error={run.error} />}
      <div className="actions">
        <button type="submit" className="primary" disabled={run.isPending || parsed === 'invalid'}>{t('flows.run')}</button>
        <span role="status">
          {run.isSuccess && <>{t('flows.runStarted')} <Link to={`/jobs/${run.data.jobId}`}>{t('flows.viewJob')}</Link></>}
        </span>
      </div>
    </form>
  );
}
