/**
 * The platform operator's sign-in: POST /api/operator/session exchanges OPERATOR_TOKEN for an HttpOnly cookie. The
 * token lives in this form's state only until it is sent (then it is cleared); it is never stored where a script
 * could read it later (no localStorage, no readable cookie), and the field asks browsers not to remember it.
 */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Navigate, useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { OPERATOR_SESSION_KEY, useOperatorSession } from '../../session/operator-session.tsx';
import { AuthFrame } from '../login/auth-frame.tsx';

export default function OperatorLoginPage() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const session = useOperatorSession();
  const [token, setToken] = useState('');
  const signIn = useMutation({
    mutationFn: (value: string) => ok(api.POST('/api/operator/session', { body: { token: value } })),
    onSuccess: (s) => {
      client.clear();
      client.setQueryData(OPERATOR_SESSION_KEY, s);
      void navigate('/operator/system', { replace: true });
    },
  });
  if (session.data && !signIn.isPending) return <Navigate to="/operator/system" replace />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const value = token;
    setToken('');
    signIn.mutate(value);
  };
  // A wrong token is said as such (the catalogue's INVALID_CREDENTIALS speaks of e-mails and passwords).
  const wrongToken = signIn.error instanceof ApiError && signIn.error.code === 'INVALID_CREDENTIALS';
  return (
    <AuthFrame title={t('operator.signInTitle')}>
      {params.get('signedOut') && <p className="alert alert-info" role="status">{t('operator.signedOut')}</p>}
      <p>{t('operator.signInIntro')}</p>
      <form onSubmit={submit} className="form">
        <label>
          <span>{t('operator.token')}</span>
          <input type="password" name="operator-token" autoComplete="off" spellCheck={false} required value={token} onChange={(e) => setToken(e.target.value)} />
        </label>
        {signIn.isError && (wrongToken
          ? <div className="alert alert-error" role="alert"><p>{t('operator.wrongToken')}</p></div>
          : <ErrorMessage error={signIn.error} />)}
        <button type="submit" className="primary" disabled={signIn.isPending}>{signIn.isPending ? t('auth.working') : t('operator.signInSubmit')}</button>
      </form>
    </AuthFrame>
  );
}
