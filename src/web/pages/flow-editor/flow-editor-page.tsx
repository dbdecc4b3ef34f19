/**
 * A new flow (or a new version of one: `?from=<flowId>` starts from its steps; `?template=demo` from the demo flow). Everything typed is kept in a
 * draft until the flow is created, so an ended session loses nothing. The API's FLOW_INVALID message is shown at
 * the step it names; URLs outside the provider's allowed hosts are flagged before saving.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Page } from '../../components/page.tsx';
import { useDraft } from '../../lib/drafts.ts';
import { FLOWS_KEY } from '../flows/flows-page.tsx';
import { useProviders } from '../providers/providers-page.tsx';
import { StepEditor } from './step-editor.tsx';
import { DEMO_TEMPLATE_ID, demoTemplateSteps } from './templates.ts';
import { fromApiStep, stepProblem, newStep, STEP_TYPES, toApiStep, type EditorStep, type StepType } from './steps.ts';

interface Draft { providerId: string; name: string; version: string; description: string; steps: EditorStep[] }
const EMPTY: Draft = { providerId: '', name: '', version: '1.0.0', description: '', steps: [] };

export default function FlowEditorPage() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const providers = useProviders();
  const from = params.get('from');
  const template = from ? null : params.get('template');
  const draftKey = `flow-editor:${from ?? (template ? `template-${template}` : 'new')}`;
  const [draft, setDraft, clearDraft] = useDraft<Draft>(draftKey, EMPTY);
  const [addType, setAddType] = useState<StepType>('navigate');
  // The step just added takes the focus (its type), so a keyboard user goes on where the new fields are.
  const [added, setAdded] = useState<number | undefined>();
  const source = useQuery({
    queryKey: ['flows', from], enabled: !!from,
    queryFn: () => ok(api.GET('/api/flows/{id}', { params: { path: { id: from ?? '' } } })),
  });
  // Starting from a flow fills an untouched draft once.
  useEffect(() => {
    const f = source.data?.flow;
    if (f && draft.steps.length === 0 && draft.name === '') {
      setDraft({ providerId: f.providerId, name: f.name, version: '', description: f.description ?? '', steps: f.steps.map(fromApiStep) });
    }
  }, [source.data, draft.steps.length, draft.name, setDraft]);

  // Starting from the demo template fills an untouched draft once the demo provider's address is known.
  const demoHost = template === DEMO_TEMPLATE_ID ? providers.data?.providers.find((p) => p.id === 'demo')?.allowedHosts[0] : undefined;
  useEffect(() => {
    if (demoHost && draft.steps.length === 0 && draft.name === '') {
      setDraft({ providerId: 'demo', name: t('editor.demoTemplateName'), version: '1.0.0', description: t('editor.demoTemplateDescription'), steps: demoTemplateSteps(demoHost).map(fromApiStep) });
    }
  }, [demoHost, draft.steps.length, draft.name, setDraft, t]);

  const save = useMutation({
    mutationFn: () => ok(api.POST('/api/flows', {
      body: {
        providerId: draft.providerId, name: draft.name, version: draft.version.trim(),
        ...(draft.description.trim() ? { description: draft.description } : {}),
        steps: draft.steps.map(toApiStep),
      },
    })),
    onSuccess: (r) => {
      clearDraft();
      void client.invalidateQueries({ queryKey: FLOWS_KEY });
      void navigate(`/flows/${r.flow.id}`);
    },
  });
  const stepError = save.error instanceof ApiError ? stepProblem(save.error.code, save.error.message, save.error.details) : undefined;
  const allowedHosts = providers.data?.providers.find((p) => p.id === draft.providerId)?.allowedHosts;
  const update = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));
  const setSteps = (fn: (s: EditorStep[]) => EditorStep[]) => setDraft((d) => ({ ...d, steps: fn(d.steps) }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };

  return (
    <Page title={t('editor.title')}>
      <form className="form" onSubmit={submit}>
        <div className="row">
          <label>
            <span>{t('flows.provider')}</span>
            <select required value={draft.providerId} onChange={(e) => update({ providerId: e.target.value })}>
              <option value="">{t('editor.pickProvider')}</option>
              {providers.data?.providers.map((p) => <option key={p.id} value={p.id}>{p.displayName}</option>)}
            </select>
          </label>
          <label>
            <span>{t('flows.name')}</span>
            <input required maxLength={200} value={draft.name} onChange={(e) => update({ name: e.target.value })} />
          </label>
          <div className="field">
            <label>
              <span>{t('flows.version')}</span>
              <input required maxLength={64} value={draft.version} aria-describedby="version-help" onChange={(e) => update({ version: e.target.value })} />
            </label>
            <small id="version-help">{t('editor.versionHelp')}</small>
          </div>
        </div>
        <label>
          <span>{t('editor.description')}</span>
          <textarea rows={2} maxLength={2000} value={draft.description} onChange={(e) => update({ description: e.target.value })} />
        </label>

        <h2>{t('editor.stepsTitle')}</h2>
        {draft.steps.length === 0 && <p className="empty-state">{t('editor.noSteps')}</p>}
        <ol className="steps">
          {draft.steps.map((s, i) => (
            <StepEditor key={s.key} step={s} index={i} count={draft.steps.length} allowedHosts={allowedHosts} autoFocus={s.key === added}
              apiError={stepError?.index === i ? stepError.message : undefined}
              onChange={(next) => setSteps((all) => all.map((x, j) => (j === i ? next : x)))}
              onMove={(d) => setSteps((all) => {
                const copy = [...all];
                const [moved] = copy.splice(i, 1);
                copy.splice(i + d, 0, moved!);
                return copy;
              })}
              onRemove={() => setSteps((all) => all.filter((_, j) => j !== i))} />
          ))}
        </ol>
        <div className="row add-step">
          <label>
            <span>{t('editor.newStepType')}</span>
            <select value={addType} onChange={(e) => setAddType(e.target.value as StepType)}>
              {STEP_TYPES.map((ty) => <option key={ty} value={ty}>{t(`editor.types.${ty}`)}</option>)}
            </select>
          </label>
          <button type="button" onClick={() => {
            const step = newStep(addType);
            setAdded(step.key);
            setSteps((all) => [...all, step]);
          }}>{t('editor.addStep')}</button>
        </div>

        {save.isError && !stepError && <ErrorMessage error={save.error} />}
        {stepError && <p className="alert alert-error" role="alert">{t('editor.stepRefused', { n: stepError.index + 1 })}</p>}
        <div className="actions">
          <button type="submit" className="primary" disabled={save.isPending}>{t('editor.save')}</button>
        </div>
      </form>
    </Page>
  );
}
