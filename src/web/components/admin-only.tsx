/** Renders its children for the organisation's admins; anyone else reads that the page is not for them. */
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { useSession } from '../session/session.tsx';
import { Page } from './page.tsx';

export function useIsAdmin(): boolean {
  return useSession().data?.user.role === 'admin';
}

export function AdminOnly({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useTranslation();
  if (!useIsAdmin()) return <Page title={title}><p className="alert alert-info">{t('admin.only')}</p></Page>;
  return <>{children}</>;
}
