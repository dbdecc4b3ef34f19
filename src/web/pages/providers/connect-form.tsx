/**
 * Connecting a provider: the user's portal cookies (pasted as a Cookie header or an extension's JSON export) and
 * optional credentials. Everything here is secret: password fields, never kept in drafts, never shown back.
 */
import { useMutation } from '@tanstack/react-query';
import { useId, useMemo, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { cookieDomainOf, parseCookies } from '../../lib/cookies.ts';

interface Provider { id: string; displayName: string; allowedHosts: string[] }

export function ConnectForm({ id, provider, onDone, onCancel }: { id: string; provider: Provider; onDone: (expiresAt: string) => void; onCancel: () => void }) {
  const { t } = useTranslation();
  const uid = useId();
  const [cookieText, setCookieText] = useState('');
  const [credentials, setCredentials] = useState<{ key: number; name: string; value: string }[]>([]);
  const [nextKey, setNextKey] = useState(1);
  const parsed = useMemo(() => (cookieText.trim() ? parseCookies(cookieText, cookieDomainOf(provider.allowedHosts[0])) : undefined), [cookieText, provider.allowedHosts]);
  const connect = useMutation({
    mutationFn: () => {
      const cookies = parsed?.ok ? parsed.cookies : [];
      const creds = Object.fromEntries(credentials.filter((c) => c.name.trim()).map((c) => [c.name.trim(), c.value]));
      return ok(api.POST('/api/providers/{id}/connect', {
        params: { path: { id: provider.id } },
        body: { cookies, ...(Object.keys(creds).length ? { credentials: creds } : {}) },
      }));
    },
    onSuccess: (r) => {
      // Nothing secret stays in the page once it is stored.
      setCookieText('');
      setCredentials([]);
      onDone(r.expiresAt);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (parsed && !parsed.ok) return;
    connect.mutate();
  };
  const headingId = `${uid}-heading`;
  return (
    <section id={id} className="subform" aria-labelledby={headingId}>
      <h3 id={headingId}>{t('providers.connectTitle', { name: provider.displayName })}</h3>
      <form onSubmit={submit} className="form">
        <div className="field">
          <label>
            <span>{t('providers.cookiesLabel')}</span>
            {/* A textarea cannot be type=password; it is masked and kept out of drafts, autocomplete and spell-check. */}
            <textarea rows={4} value={cookieText} onChange={(e) => setCookieText(e.target.value)} autoComplete="off" spellCheck={false}
              aria-describedby={`${uid}-cookies-help ${uid}-cookies-state`} aria-invalid={parsed !== undefined && !parsed.ok} className="secret-text" />
          </label>
          <small id={`${uid}-cookies-help`}>{t('providers.cookiesHelp')}</small>
          <small id={`${uid}-cookies-state`} role="status" className={parsed && !parsed.ok ? 'field-error' : ''}>
            {parsed ? (parsed.ok ? t('providers.cookiesCount', { count: parsed.cookies.length }) : t('providers.cookiesInvalid', { reason: parsed.reason })) : ''}
          </small>
        </div>
        <fieldset>
          <legend>{t('providers.credentialsTitle')}</legend>
          <p className="help">{t('providers.credentialsHelp')}</p>
          {credentials.map((c, i) => (
            <div className="row" key={c.key}>
              <label>
                <span>{t('providers.credentialName')}</span>
                <input value={c.name} autoComplete="off" pattern="[A-Za-z0-9_.\-]{1,64}"
                  onChange={(e) => setCredentials((cs) => cs.map((x, j) => (j === i ? { ...x, name: e.target.value } : x)))} />
              </label>
              <label>
                <span>{t('providers.credentialValue')}</span>
                <input type="password" value={c.value} autoComplete="new-password"
                  onChange={(e) => setCredentials((cs) => cs.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))} />
              </label>
              <button type="button" className="link" aria-label={t('providers.removeCredential', { name: c.name || String(i + 1) })}
                onClick={() => setCredentials((cs) => cs.filter((_, j) => j !== i))}>{t('common.remove')}</button>
            </div>
          ))}
          <button type="button" onClick={() => { setCredentials((cs) => [...cs, { key: nextKey, name: '', value: '' }]); setNextKey((k) => k + 1); }}>
            {t('providers.addCredential')}
          </button>
        </fieldset>
        {connect.isError && <ErrorMessage error={connect.error} />}
        <div className="actions">
          <button type="submit" className="primary" disabled={connect.isPending}>{t('providers.submit')}</button>
          <button type="button" onClick={onCancel}>{t('common.cancel')}</button>
        </div>
      </form>
    </section>
  );
}
