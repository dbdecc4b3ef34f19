import { useTranslation } from 'react-i18next';

/** Previous / "Page N of M" / Next, for a list paged in the URL (jobs, documents). */
export function Pager({ page, pages, goTo }: { page: number; pages: number; goTo: (page: number) => void }) {
  const { t } = useTranslation();
  return (
    <nav className="pager" aria-label={t('common.pageOf', { page, pages })}>
      <button type="button" disabled={page <= 1} onClick={() => goTo(page - 1)}>{t('common.previous')}</button>
      <span>{t('common.pageOf', { page, pages })}</span>
      <button type="button" disabled={page >= pages} onClick={() => goTo(page + 1)}>{t('common.next')}</button>
    </nav>
  );
}
