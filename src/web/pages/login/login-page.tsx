/**
 * Log in: POST /api/session sets the HttpOnly session cookie; the page never sees a token. `?next=` brings the user
 * back where their session ended (with their drafts), `?expired=1` says why they are here.
 */
import { useMutation } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { useSession, useSignedIn } from '../../session/session.tsx';
import { AuthFrame } from './auth-frame.tsx';

/** Only paths of this app: `next` must not send the user to another site after logging in. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/jobs';
}

export function LoginPage() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const session = useSession();
  const signedIn = useSignedIn();
  // An accepted invitation sends the new member here with their e-mail filled in.
  const [email, setEmail] = useState(params.get('email') ?? '');
  const [password, setPassword] = useState('');
  const next = safeNext(params.get('next'));
  const login = useMutation({
    mutationFn: () => ok(api.POST('/api/session', { body: { email, password } })),
    onSuccess: (s) => {
      signedIn(s);
      void navigate(next, { replace: true });
    },
  });
  if (session.data && !login.isPending) return <Navigate to={next} replace />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    login.mutate();
  };
  return (
    <AuthFrame title={t('auth.loginTitle')}>
      {params.get('expired') && <p className="alert alert-info" role="status">{t('auth.expired')}</p>}
      {params.get('loggedOut') && <p className="alert alert-info" role="status">{t('auth.loggedOut')}</p>}
      <form onSubmit={submit} className="form">
        <label>
          <span>{t('auth.email')}</span>
          <input type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          <span>{t('auth.password')}</span>
          <input type="password" name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {login.isError && <ErrorMessage error={login.error} />}
        <button type="submit" className="primary" disabled={login.isPending}>{login.isPending ? t('auth.working') : t('auth.loginSubmit')}</button>
      </form>
      <p>{t('auth.noAccount')} <Link to={`/register${params.get('next') ? `?next=${encodeURIComponent(next)}` : ''}`}>{t('auth.registerLink')}</Link></p>
    </AuthFrame>
  );
}
