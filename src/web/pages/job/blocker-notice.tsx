/**
 * What stood between the job and its page (docs/scripts.md "Blockers"): the kind in words, the page (its address
 * without query), the rule that matched, and what to do about it.
 */
import { useTranslation } from 'react-i18next';
import type { components } from '../../api/schema.d.ts';

// Inline in JobDetail (a named schema made nullable is a $ref with a nullable sibling, which OpenAPI 3.0 does not allow).
type JobBlocker = NonNullable<components['schemas']['JobDetail']['blocker']>;

export function BlockerNotice({ blocker }: { blocker: JobBlocker }) {
  const { t } = useTranslation();
  return (
    <section className="card alert-warning" aria-labelledby="blocker-heading">
      <h2 id="blocker-heading">{t('job.blocker.heading')}</h2>
      <p><strong>{t(`job.blocker.kinds.${blocker.kind}`)}</strong></p>
      <dl className="facts">
        <dt>{t('job.blocker.page')}</dt><dd><code>{blocker.url}</code></dd>
        <dt>{t('job.blocker.evidence')}</dt><dd>{blocker.evidence}</dd>
      </dl>
      <p>{t(`job.blocker.advice.${blocker.kind}`)}</p>
    </section>
  );
}
