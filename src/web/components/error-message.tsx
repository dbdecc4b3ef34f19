/** An error as a user can act on it: the API's code in their language when the catalogue knows it, else its message. */
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../api/client.ts';

const KNOWN = [
  'INVALID_CREDENTIALS', 'EMAIL_TAKEN', 'WEAK_PASSWORD', 'ACCOUNT_LOCKED', 'RATE_LIMITED', 'FORBIDDEN', 'PROVIDER_NOT_CONNECTED',
  'NO_ACTIVE_FLOW', 'FLOW_VERSION_EXISTS', 'QUEUE_FULL', 'CSRF_TOKEN_INVALID', 'VALIDATION_FAILED',
  'SCHEDULE_CRON_INVALID', 'SCHEDULE_TIMEZONE_INVALID', 'LAST_ADMIN', 'INVITATION_INVALID', 'DLQ_ENTRY_TRUNCATED',
  'WEBHOOK_TARGET_REFUSED', 'SECRETS_NOT_CONFIGURED', 'TOKEN_INVALID',
] as const;
type Known = (typeof KNOWN)[number];
const isKnown = (code: string): code is Known => (KNOWN as readonly string[]).includes(code);

export function errorText(t: TFunction, error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === 'NETWORK') return t('errors.network');
    if (isKnown(error.code)) return t(`errors.${error.code}`);
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Validation details of the API, one line per field. */
export function errorDetails(error: unknown): string[] {
  if (!(error instanceof ApiError) || !Array.isArray(error.details)) return [];
  return error.details.flatMap((d: unknown) => {
    const o = d as { field?: unknown; message?: unknown };
    return typeof o.message === 'string' ? [`${typeof o.field === 'string' ? `${o.field}: ` : ''}${o.message}`] : [];
  });
}

export function ErrorMessage({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useTranslation();
  const details = errorDetails(error);
  return (
    <div className="alert alert-error" role="alert">
      <p>{errorText(t, error)}</p>
      {details.length > 0 && <ul>{details.map((d) => <li key={d}>{d}</li>)}</ul>}
      {onRetry && <button type="button" onClick={onRetry}>{t('errors.retry')}</button>}
    </div>
  );
}
