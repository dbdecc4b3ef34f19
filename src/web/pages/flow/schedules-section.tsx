/**
 * The flow page's schedules (docs/schedules.md): those that run this flow — pinned to it, or following the provider's
 * active flow while this one is active — each with its next five run times on its own clock; pause, resume, edit,
 * delete; and the form for a new one. The API checks the pattern and the zone and says what to fix.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useMemo, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok, type paths } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { useFormat } from '../../lib/format.ts';

type Schedule = paths['/api/schedules/{id}']['get']['responses'][200]['content']['application/json']['schedule'];
type Policy = Schedule['missedRunPolicy'];
interface FlowRef { id: string; providerId: string; version: string; active: boolean }

/** The browser's own zone: the default of a new schedule (the organisation has no zone of its own yet). */
const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;
const zones = (): string[] => {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return [];
  }
};

export function SchedulesSection({ flow }: { flow: FlowRef }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [editing, setEditing] = useState<Schedule | undefined>();
  const [notice, setNotice] = useState('');
  // A new key empties the form after each save.
  const [formKey, setFormKey] = useState(0);
  const list = useQuery({ queryKey: ['schedules'], queryFn: () => ok(api.GET('/api/schedules')) });
  const refresh = () => qc.invalidateQueries({ queryKey: ['schedules'] });
  const toggle = useMutation({
    mutationFn: (s: Schedule) => ok(api.POST(s.enabled ? '/api/schedules/{id}/pause' : '/api/schedules/{id}/resume', { params: { path: { id: s.id } } })),
    onSuccess: (r) => { setNotice(r.schedule.enabled ? t('schedules.resumed') : t('schedules.paused')); void refresh(); },
  });
  const remove = useMutation({
    mutationFn: (s: Schedule) => ok(api.DELETE('/api/schedules/{id}', { params: { path: { id: s.id } } })),
    onSuccess: () => { setNotice(t('schedules.deleted')); setEditing(undefined); void refresh(); },
  });
  const mine = (list.data?.schedules ?? []).filter((s) => s.flowId === flow.id || (s.flowId === null && s.providerId === flow.providerId && flow.active));
  return (
    <section className="card" aria-labelledby="schedules-heading">
      <h2 id="schedules-heading">{t('schedules.title')}</h2>
      <p className="intro">{t('schedules.intro')}</p>
      <p role="status" className="notice">{notice}</p>
      {list.isPending && <Loading />}
      {list.isError && <ErrorMessage error={list.error} onRetry={() => void list.refetch()} />}
      {toggle.isError && <ErrorMessage error={toggle.error} />}
      {remove.isError && <ErrorMessage error={remove.error} />}
      {list.isSuccess && mine.length === 0 && <p>{t('schedules.empty')}</p>}
      {mine.length > 0 && (
        <ul className="schedules">
          {mine.map((s) => (
            <li key={s.id} className="schedule">
              <ScheduleSummary s={s} version={flow.version} />
              <div className="actions">
                <button type="button" onClick={() => toggle.mutate(s)} disabled={toggle.isPending}
                  aria-label={t(s.enabled ? 'schedules.pauseOne' : 'schedules.resumeOne', { cron: s.cron })}>
                  {t(s.enabled ? 'schedules.pause' : 'schedules.resume')}
                </button>
                <button type="button" onClick={() => setEditing(s)} aria-label={t('schedules.editOne', { cron: s.cron })}>{t('schedules.edit')}</button>
                <button type="button" className="danger" onClick={() => remove.mutate(s)} disabled={remove.isPending}
                  aria-label={t('schedules.deleteOne', { cron: s.cron })}>
                  {t('schedules.delete')}
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      <ScheduleForm key={`${editing?.id ?? 'new'}-${formKey}`} flow={flow} editing={editing}
        onDone={(created) => { setNotice(created ? t('schedules.created') : t('schedules.saved')); setEditing(undefined); setFormKey((k) => k + 1); void refresh(); }}
        onCancel={() => setEditing(undefined)} />
    </section>
  );
}

function ScheduleSummary({ s, version }: { s: Schedule; version: string }) {
  const { t } = useTranslation();
  const f = useFormat();
  // The schedule's due times on its own clock, in the user's language.
  const onItsClock = useMemo(() => new Intl.DateTimeFormat(f.locale, { dateStyle: 'full', timeStyle: 'medium', timeZone: s.timezone }), [f.locale, s.timezone]);
  return (
    <>
      <h3><code>{s.cron}</code> · {s.timezone}</h3>
      <p>
        {s.enabled ? t('schedules.enabled') : t('schedules.pausedState')} · {t(s.missedRunPolicy === 'skip' ? 'schedules.policySkip' : 'schedules.policyRunOnce')}
        {' · '}{s.flowId === null ? t('schedules.followsActive') : t('schedules.pinned', { version })}
      </p>
      {s.lastError && <p className="field-error">{t('schedules.lastError', { code: s.lastError.code, message: s.lastError.message })}</p>}
      {s.nextRuns.length > 0 && (
        <>
          <h4>{t('schedules.nextRuns', { zone: s.timezone })}</h4>
          <ol className="next-runs">
            {s.nextRuns.map((at) => <li key={at}><time dateTime={at}>{onItsClock.format(new Date(at))}</time></li>)}
          </ol>
        </>
      )}
    </>
  );
}

function ScheduleForm({ flow, editing, onDone, onCancel }: {
  flow: FlowRef; editing: Schedule | undefined; onDone: (created: boolean) => void; onCancel: () => void;
}) {
  const { t } = useTranslation();
  const uid = useId();
  const [cron, setCron] = useState(editing?.cron ?? '');
  const [timezone, setTimezone] = useState(editing?.timezone ?? browserZone());
  const [policy, setPolicy] = useState<Policy>(editing?.missedRunPolicy ?? 'skip');
  const [target, setTarget] = useState<'flow' | 'provider'>('flow');
  const zoneList = useMemo(zones, []);
  const save = useMutation({
    mutationFn: async () => {
      if (editing) {
        await ok(api.PATCH('/api/schedules/{id}', { params: { path: { id: editing.id } }, body: { cron, timezone, missedRunPolicy: policy } }));
        return false;
      }
      const body = { cron, timezone, missedRunPolicy: policy, ...(target === 'flow' ? { flowId: flow.id } : { providerId: flow.providerId }) };
      await ok(api.POST('/api/schedules', { body }));
      return true;
    },
    onSuccess: (created) => onDone(created),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form className="form schedule-form" onSubmit={submit} aria-labelledby={`${uid}-title`}>
      <h3 id={`${uid}-title`}>{editing ? t('schedules.editTitle', { cron: editing.cron }) : t('schedules.newTitle')}</h3>
      <div className="field">
        <label>
          <span>{t('schedules.cron')}</span>
          <input value={cron} onChange={(e) => setCron(e.target.value)} required spellCheck={false} placeholder="0 8 * * 1-5" aria-describedby={`${uid}-cron-help`} />
        </label>
        <small id={`${uid}-cron-help`}>{t('schedules.cronHelp')}</small>
      </div>
      <div className="field">
        <label>
          <span>{t('schedules.timezone')}</span>
          <input value={timezone} onChange={(e) => setTimezone(e.target.value)} required list={`${uid}-zones`} spellCheck={false} />
        </label>
        <datalist id={`${uid}-zones`}>{zoneList.map((z) => <option key={z} value={z} />)}</datalist>
      </div>
      <div className="field">
        <label>
          <span>{t('schedules.policy')}</span>
          <select value={policy} onChange={(e) => setPolicy(e.target.value as Policy)}>
            <option value="skip">{t('schedules.policySkip')}</option>
            <option value="runOnce">{t('schedules.policyRunOnce')}</option>
          </select>
        </label>
        <small>{t('schedules.policyHelp')}</small>
      </div>
      {!editing && (
        <div className="field">
          <label>
            <span>{t('schedules.target')}</span>
            <select value={target} onChange={(e) => setTarget(e.target.value as 'flow' | 'provider')}>
              <option value="flow">{t('schedules.pinned', { version: flow.version })}</option>
              <option value="provider">{t('schedules.followsActive')}</option>
            </select>
          </label>
        </div>
      )}
      {save.isError && <ErrorMessage error={save.error} />}
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>{editing ? t('common.save') : t('schedules.create')}</button>
        {editing && <button type="button" onClick={onCancel}>{t('common.cancel')}</button>}
      </div>
    </form>
  );
}
