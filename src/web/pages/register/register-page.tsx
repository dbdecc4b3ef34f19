/**
 * Sign up: POST /api/auth/register creates the organisation and its admin; the page then logs in through
 * POST /api/session, so the session lives in the HttpOnly cookie. The registration's bearer token is not kept.
 */
import { useMutation } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { useSignedIn } from '../../session/session.tsx';
import { AuthFrame } from '../login/auth-frame.tsx';
import { safeNext } from '../login/login-page.tsx';

export default function RegisterPage() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const signedIn = useSignedIn();
  const [form, setForm] = useState({ name: '', email: '', orgName: '', password: '' });
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const register = useMutation({
    mutationFn: async () => {
      await ok(api.POST('/api/auth/register', { body: form }));
      return ok(api.POST('/api/session', { body: { email: form.email, password: form.password } }));
    },
    onSuccess: (s) => {
      signedIn(s);
      void navigate(safeNext(params.get('next') ?? '/providers'), { replace: true });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    register.mutate();
  };
  return (
    <AuthFrame title={t('auth.registerTitle')}>
      <form onSubmit={submit} className="form">
        <label>
          <span>{t('auth.name')}</span>
          <input name="name" autoComplete="name" required maxLength={200} value={form.name} onChange={set('name')} />
        </label>
        <label>
          <span>{t('auth.email')}</span>
          <input type="email" name="email" autoComplete="email" required maxLength={254} value={form.email} onChange={set('email')} />
        </label>
        <label>
          <span>{t('auth.orgName')}</span>
          <input name="orgName" autoComplete="organization" required maxLength={200} value={form.orgName} onChange={set('orgName')} />
        </label>
        <div className="field">
          <label>
            <span>{t('auth.password')}</span>
            <input type="password" name="password" autoComplete="new-password" required minLength={12} maxLength={1024}
              aria-describedby="password-hint" value={form.password} onChange={set('password')} />
          </label>
          <small id="password-hint">{t('auth.passwordHint')}</small>
        </div>
        {register.isError && <ErrorMessage error={register.error} />}
        <button type="submit" className="primary" disabled={register.isPending}>{register.isPending ? t('auth.working') : t('auth.registerSubmit')}</button>
      </form>
      <p>{t('auth.haveAccount')} <Link to="/login">{t('auth.loginLink')}</Link></p>
    </AuthFrame>
  );
}
