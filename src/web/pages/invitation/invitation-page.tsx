/**
 * Accepting an invitation: the link an admin passed on is `/invitation#<token>` (the token in the fragment, never
 * sent to a server but by this form's POST). The member chooses a password; then they log in with it.
 */
import { useMutation } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { AuthFrame } from '../login/auth-frame.tsx';

export default function InvitationPage() {
  const { t } = useTranslation();
  const [token] = useState(() => decodeURIComponent(window.location.hash.replace(/^#/, '')));
  const [password, setPassword] = useState('');
  const accept = useMutation({ mutationFn: () => ok(api.POST('/api/invitations/accept', { body: { token, password } })) });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    accept.mutate();
  };
  if (accept.isSuccess) {
    const { name, orgName, email } = accept.data;
    return (
      <AuthFrame title={t('invitation.title')}>
        <p className="alert alert-info" role="status">{t('invitation.accepted', { name, org: orgName, email })}</p>
        <Link className="button primary" to={`/login?email=${encodeURIComponent(email)}`}>{t('invitation.toLogin')}</Link>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title={t('invitation.title')}>
      {!token ? <p className="alert alert-error" role="alert">{t('invitation.missing')}</p> : (
        <form onSubmit={submit} className="form">
          <p>{t('invitation.intro')}</p>
          <label>
            <span>{t('auth.password')}</span>
            <input type="password" name="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
            <small>{t('auth.passwordHint')}</small>
          </label>
          {accept.isError && <ErrorMessage error={accept.error} />}
          <button type="submit" className="primary" disabled={accept.isPending}>{accept.isPending ? t('auth.working') : t('invitation.submit')}</button>
        </form>
      )}
    </AuthFrame>
  );
}
