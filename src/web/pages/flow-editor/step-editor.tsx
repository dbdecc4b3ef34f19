/** One step of the editor: its type's fields, the host warning for its URLs, the API's message when it is the one refused. */
import { useId } from 'react';
import { useTranslation } from 'react-i18next';
import { checkUrlAgainstHosts } from '../../lib/hosts.ts';
import { nextKey, STEP_TYPES, stepUrls, type EditorStep, type StepType, type WaitKind } from './steps.ts';

interface Props {
  step: EditorStep;
  index: number;
  count: number;
  allowedHosts: readonly string[] | undefined;
  apiError: string | undefined;
  autoFocus?: boolean;
  onChange: (s: EditorStep) => void;
  onMove: (delta: -1 | 1) => void;
  onRemove: () => void;
}

export function StepEditor({ step, index, count, allowedHosts, apiError, autoFocus, onChange, onMove, onRemove }: Props) {
  const { t } = useTranslation();
  const uid = useId();
  const n = index + 1;
  const set = <K extends keyof EditorStep>(k: K, v: EditorStep[K]) => onChange({ ...step, [k]: v });
  const warnings = allowedHosts ? stepUrls(step).flatMap((u) => {
    const c = checkUrlAgainstHosts(u, allowedHosts);
    if (c.ok) return [];
    return [c.reason === 'host' ? t('editor.hostNotAllowed', { host: c.host, hosts: allowedHosts.join(', ') }) : t('editor.notAUrl')];
  }) : [];
  const problemId = `${uid}-problem`;
  const problems = [...warnings, ...(apiError ? [apiError] : [])];
  const described = problems.length ? problemId : undefined;
  const text = (label: string, k: 'url' | 'selector' | 'value' | 'secretRef' | 'totp' | 'name' | 'waitValue' | 'reason' | 'handoffTimeoutMs', opts: { type?: string; required?: boolean; describe?: boolean } = {}) => (
    <label>
      <span>{label}</span>
      <input type={opts.type ?? 'text'} value={step[k]} required={opts.required ?? true} spellCheck={false}
        aria-invalid={opts.describe && problems.length > 0 ? true : undefined} aria-describedby={opts.describe ? described : undefined}
        onChange={(e) => set(k, e.target.value)} />
    </label>
  );
  return (
    <li className={`step card${problems.length ? ' step-invalid' : ''}`}>
      <fieldset>
        <legend>{t('editor.stepN', { n, type: t(`editor.types.${step.type}`) })}</legend>
        <div className="row">
          <label>
            <span>{t('editor.stepType')}</span>
            <select value={step.type} autoFocus={autoFocus} onChange={(e) => set('type', e.target.value as StepType)}>
              {STEP_TYPES.map((ty) => <option key={ty} value={ty}>{t(`editor.types.${ty}`)}</option>)}
            </select>
          </label>
          <div className="step-tools">
            <button type="button" disabled={index === 0} aria-label={t('editor.moveUp', { n })} onClick={() => onMove(-1)}>↑</button>
            <button type="button" disabled={index === count - 1} aria-label={t('editor.moveDown', { n })} onClick={() => onMove(1)}>↓</button>
            <button type="button" className="danger" aria-label={t('editor.removeStep', { n })} onClick={onRemove}>{t('common.remove')}</button>
          </div>
        </div>

        {step.type === 'navigate' && text(t('editor.url'), 'url', { type: 'url', describe: true })}
        {(step.type === 'click' || step.type === 'download') && text(t('editor.selector'), 'selector', { describe: true })}
        {step.type === 'fill' && (
          <>
            {text(t('editor.selector'), 'selector')}
            <fieldset className="inline">
              <legend>{t('editor.fillWith')}</legend>
              {(['value', 'secret', 'totp'] as const).map((mode) => (
                <label key={mode} className="choice">
                  <input type="radio" name={`${uid}-fill`} checked={step.fillMode === mode} onChange={() => set('fillMode', mode)} />
                  {mode === 'value' ? t('editor.fillValue') : mode === 'secret' ? t('editor.fillSecret') : t('editor.fillTotp')}
                </label>
              ))}
            </fieldset>
            {step.fillMode === 'value' ? text(t('editor.value'), 'value', { required: false, describe: true })
              : step.fillMode === 'secret' ? text(t('editor.secretRef'), 'secretRef', { describe: true }) : text(t('editor.totp'), 'totp', { describe: true })}
          </>
        )}
        {step.type === 'waitFor' && (
          <div className="row">
            <label>
              <span>{t('editor.waitKind')}</span>
              <select value={step.waitKind} onChange={(e) => set('waitKind', e.target.value as WaitKind)}>
                <option value="selector">{t('editor.waitSelector')}</option>
                <option value="url">{t('editor.waitUrl')}</option>
                <option value="urlPrefix">{t('editor.waitUrlPrefix')}</option>
                <option value="timeoutMs">{t('editor.waitTimeout')}</option>
              </select>
            </label>
            {text(step.waitKind === 'selector' ? t('editor.selector') : step.waitKind === 'timeoutMs' ? t('editor.timeoutMs') : t('editor.url'), 'waitValue',
              { type: step.waitKind === 'timeoutMs' ? 'number' : step.waitKind === 'selector' ? 'text' : 'url', describe: true })}
          </div>
        )}
        {step.type === 'screenshot' && (
          <label className="choice">
            <input type="checkbox" checked={step.fullPage} onChange={(e) => set('fullPage', e.target.checked)} />
            {t('editor.fullPage')}
          </label>
        )}
        {step.type === 'handoff' && (
          <div className="row">
            {text(t('editor.handoffReason'), 'reason', { describe: true })}
            {text(t('editor.handoffTimeoutMs'), 'handoffTimeoutMs', { type: 'number', required: false })}
          </div>
        )}
        {step.type === 'extract' && (
          <>
            <div className="row">
              {text(t('editor.extractName'), 'name', { describe: true })}
              {text(t('editor.rowSelector'), 'selector')}
            </div>
            <fieldset>
              <legend>{t('editor.fields')}</legend>
              {step.fields.map((f, i) => {
                const setField = (patch: Partial<typeof f>) => set('fields', step.fields.map((x, j) => (j === i ? { ...x, ...patch } : x)));
                return (
                  <div className="row" key={f.key}>
                    <label><span>{t('editor.fieldName')}</span><input value={f.name} required spellCheck={false} onChange={(e) => setField({ name: e.target.value })} /></label>
                    <label><span>{t('editor.fieldSelector')}</span><input value={f.selector} spellCheck={false} onChange={(e) => setField({ selector: e.target.value })} /></label>
                    <label><span>{t('editor.fieldAttribute')}</span><input value={f.attribute} spellCheck={false} onChange={(e) => setField({ attribute: e.target.value })} /></label>
                    <button type="button" className="link" disabled={step.fields.length === 1} aria-label={t('editor.removeField', { n: i + 1 })}
                      onClick={() => set('fields', step.fields.filter((_, j) => j !== i))}>{t('common.remove')}</button>
                  </div>
                );
              })}
              <button type="button" onClick={() => set('fields', [...step.fields, { key: nextKey(), name: '', selector: '', attribute: '' }])}>{t('editor.addField')}</button>
            </fieldset>
          </>
        )}
        <div id={problemId} className="step-problems" aria-live="polite">
          {problems.map((p) => <p key={p} className="field-error">{p}</p>)}
        </div>
      </fieldset>
    </li>
  );
}
