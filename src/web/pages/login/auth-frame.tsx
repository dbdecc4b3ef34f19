/** The frame of the pages before login: the product's name, the language switch, the form. */
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { LanguageSwitch } from '../../components/language-switch.tsx';
import { Page } from '../../components/page.tsx';

export function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useTranslation();
  return (
    <>
      <header className="app-header auth-header">
        <span className="brand">{t('app.name')}</span>
        <div className="header-tools"><LanguageSwitch /></div>
      </header>
      <main id="main" className="auth-main">
        <div className="card auth-card">
          <Page title={title}>{children}</Page>
        </div>
      </main>
    </>
  );
}
