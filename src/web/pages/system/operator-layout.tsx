/**
 * The frame of the operator's pages: the system page and sign-out only. No organisation page is linked (an operator
 * session opens none: the API answers 401 to it there), and no organisation page links here.
 */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { LanguageSwitch } from '../../components/language-switch.tsx';
import { OPERATOR_SESSION_KEY, useOperatorSession } from '../../session/operator-session.tsx';

export default function OperatorLayout() {
  const { t } = useTranslation();
  const session = useOperatorSession();
  const client = useQueryClient();
  const navigate = useNavigate();
  const signOut = useMutation({
    mutationFn: () => ok(api.DELETE('/api/operator/session')),
    onSettled: () => {
      client.clear();
      client.setQueryData(OPERATOR_SESSION_KEY, null);
      void navigate('/operator/login?signedOut=1', { replace: true });
    },
  });
  return (
    <>
      <a className="skip-link" href="#main">{t('app.skipToContent')}</a>
      <header className="app-header">
        <span className="brand">{t('app.name')}</span>
        <nav aria-label={t('app.mainNav')}>
          <ul>
            <li><NavLink to="/operator/system" end>{t('operator.nav')}</NavLink></li>
          </ul>
        </nav>
        <div className="header-tools">
          <LanguageSwitch />
          {session.data && <span className="whoami">{t('operator.signedInAs', { identity: session.data.operator.identity })}</span>}
          <button type="button" onClick={() => signOut.mutate()} disabled={signOut.isPending}>{t('operator.signOut')}</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
