/** The frame of every signed-in page: skip link, header with navigation, language and logout, then the page. */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { api, ok } from '../api/client.ts';
import { clearAllDrafts } from '../lib/drafts.ts';
import { SESSION_KEY, useSession } from '../session/session.tsx';
import { LanguageSwitch } from './language-switch.tsx';

export function Layout() {
  const { t } = useTranslation();
  const session = useSession();
  const client = useQueryClient();
  const navigate = useNavigate();
  const logout = useMutation({
    mutationFn: () => ok(api.DELETE('/api/session')),
    onSettled: () => {
      clearAllDrafts();
      client.clear();
      client.setQueryData(SESSION_KEY, null);
      void navigate('/login?loggedOut=1', { replace: true });
    },
  });
  const user = session.data?.user;
  return (
    <>
      <a className="skip-link" href="#main">{t('app.skipToContent')}</a>
      <header className="app-header">
        <span className="brand">{t('app.name')}</span>
        <nav aria-label={t('app.mainNav')}>
          <ul>
            <li><NavLink to="/jobs">{t('nav.jobs')}</NavLink></li>
            <li><NavLink to="/documents">{t('nav.documents')}</NavLink></li>
            <li><NavLink to="/flows">{t('nav.flows')}</NavLink></li>
            <li><NavLink to="/providers">{t('nav.providers')}</NavLink></li>
            {/* The admin pages are for admins only (the API refuses anyone else with FORBIDDEN). */}
            {user?.role === 'admin' && <li><NavLink to="/members">{t('nav.members')}</NavLink></li>}
            {user?.role === 'admin' && <li><NavLink to="/admin">{t('nav.admin')}</NavLink></li>}
          </ul>
        </nav>
        <div className="header-tools">
          <LanguageSwitch />
          {user && session.data && <span className="whoami">{t('nav.signedInAs', { name: user.name, org: session.data.org.name })}</span>}
          <button type="button" onClick={() => logout.mutate()} disabled={logout.isPending}>{t('nav.logout')}</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
