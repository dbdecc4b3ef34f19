/** The admin pages' own navigation (members and the organisation's administration). */
import { useTranslation } from 'react-i18next';
import { NavLink } from 'react-router';

export const ADMIN_PAGES = [
  ['/admin/dead-letters', 'admin.deadLetters'],
  ['/admin/webhooks', 'admin.webhooks'],
  ['/admin/secrets', 'admin.secrets'],
  ['/admin/quota', 'admin.quota'],
  ['/admin/workers', 'admin.workers'],
] as const;

export function AdminNav() {
  const { t } = useTranslation();
  return (
    <nav className="admin-nav" aria-label={t('admin.nav')}>
      <ul>
        {ADMIN_PAGES.map(([to, key]) => <li key={to}><NavLink to={to}>{t(key)}</NavLink></li>)}
      </ul>
    </nav>
  );
}
