/**
 * An inline confirmation for a destructive action: the question and two buttons in place of a dialog box, so it is
 * read and answered like the rest of the page (and from the keyboard: the confirming button takes focus).
 */
import { useEffect, useRef } from 'react';
import { useTranslation } from 'react-i18next';

export function Confirm({ question, confirmLabel, onConfirm, onCancel, busy }: {
  question: string; confirmLabel: string; onConfirm: () => void; onCancel: () => void; busy?: boolean;
}) {
  const { t } = useTranslation();
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => { yes.current?.focus(); }, []);
  return (
    <div className="confirm" role="group" aria-label={question}>
      <p>{question}</p>
      <div className="actions">
        <button ref={yes} type="button" className="danger" disabled={busy} onClick={onConfirm}>{confirmLabel}</button>
        <button type="button" onClick={onCancel}>{t('common.cancel')}</button>
      </div>
    </div>
  );
}
