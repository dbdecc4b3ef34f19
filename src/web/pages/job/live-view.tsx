/**
 * The live view of a job that waits for a person (status waiting_for_user; docs/dashboard.md "Hand-off"): the portal
 * page as its worker's browser shows it — frames from GET /api/jobs/{id}/live (Server-Sent Events, the session
 * cookie goes with them) drawn in an <img> from data: URLs, which the app's CSP allows — and the person's input
 * forwarded with POST /api/jobs/{id}/live/input: a click at the point of the image scaled to the page's viewport,
 * the keys typed while the view has focus (Tab is left to the browser so the keyboard can leave the view), and the
 * mouse wheel. Requests are sent one after the other, so the worker replays them in the order they were made.
 * "Done" hands the page back to the script; "Give up" fails the job (HANDOFF_ABANDONED).
 */
import { useEffect, useRef, useState, type KeyboardEvent, type MouseEvent, type WheelEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { useFormat } from '../../lib/format.ts';

interface Frame { src: string; viewportWidth: number; viewportHeight: number }
interface Handoff { reason: string; expiresAt: number }
type Input = { type: 'click'; x: number; y: number } | { type: 'type'; text: string } | { type: 'key'; key: string }
  | { type: 'scroll'; x: number; y: number; deltaX: number; deltaY: number };

/** Keys forwarded by name; printable characters travel as text. Tab stays the browser's. */
const NAMED_KEYS = new Set(['Enter', 'Backspace', 'Delete', 'Escape', 'ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown', 'Space']);
const WHEEL_BATCH_MS = 100;

/** Shift+arrow: how far the keyboard's pointer moves (viewport pixels). */
const POINTER_STEPS: Record<string, [number, number]> = { ArrowLeft: [-20, 0], ArrowRight: [20, 0], ArrowUp: [0, -20], ArrowDown: [0, 20] };

export function LiveView({ jobId, onAnswered }: { jobId: string; onAnswered: () => void }) {
  const { t } = useTranslation();
  const f = useFormat();
  const [frame, setFrame] = useState<Frame | null>(null);
  const [handoff, setHandoff] = useState<Handoff | null>(null);
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const chain = useRef<Promise<unknown>>(Promise.resolve());
  /** The keyboard's pointer on the page (viewport pixels): Shift+arrows move it, Shift+Enter clicks there. */
  const [pointer, setPointer] = useState<{ x: number; y: number } | null>(null);
  const wheel = useRef<{ x: number; y: number; deltaX: number; deltaY: number; timer?: number } | null>(null);

  useEffect(() => {
    setEnded(false);
    const source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/live`);
    source.addEventListener('handoff', (e) => {
      try {
        setHandoff(JSON.parse((e as MessageEvent<string>).data) as Handoff);
      } catch { /* not a hand-off this page can show */ }
    });
    source.addEventListener('frame', (e) => {
      try {
        const fr = JSON.parse((e as MessageEvent<string>).data) as { data: string; viewportWidth: number; viewportHeight: number };
        setFrame({ src: `data:image/jpeg;base64,${fr.data}`, viewportWidth: fr.viewportWidth, viewportHeight: fr.viewportHeight });
      } catch { /* not a frame */ }
    });
    source.addEventListener('end', () => {
      setEnded(true);
      source.close();
      onAnswered();
    });
    return () => source.close();
  }, [jobId, onAnswered]);

  const send = (body: Input) => {
    chain.current = chain.current.then(() => ok(api.POST('/api/jobs/{id}/live/input', { params: { path: { id: jobId } }, body })))
      .catch((e: unknown) => setError(e));
  };

  /** A point of the image as CSS pixels of the page's viewport. */
  const pagePoint = (e: { clientX: number; clientY: number; currentTarget: Element }) => {
    const box = e.currentTarget.getBoundingClientRect();
    const vw = frame?.viewportWidth ?? box.width;
    const vh = frame?.viewportHeight ?? box.height;
    return {
      x: Math.round(Math.min(Math.max(0, ((e.clientX - box.left) / box.width) * vw), vw - 1)),
      y: Math.round(Math.min(Math.max(0, ((e.clientY - box.top) / box.height) * vh), vh - 1)),
    };
  };

  const onClick = (e: MouseEvent<HTMLImageElement>) => {
    (e.currentTarget.parentElement as HTMLElement | null)?.focus();
    send({ type: 'click', ...pagePoint(e) });
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === 'Tab' || e.altKey || e.metaKey) return;
    // Pointing without a mouse: Shift+arrows move a pointer over the page (starting at its centre), Shift+Enter
    // clicks where it is.
    const vw = frame?.viewportWidth ?? 1280;
    const vh = frame?.viewportHeight ?? 720;
    const step = POINTER_STEPS[e.key];
    if (e.shiftKey && !e.ctrlKey && (step || e.key === 'Enter')) {
      const at = pointer ?? { x: Math.round(vw / 2), y: Math.round(vh / 2) };
      if (step) {
        setPointer({ x: Math.min(Math.max(0, at.x + step[0]), vw - 1), y: Math.min(Math.max(0, at.y + step[1]), vh - 1) });
      } else {
        setPointer(at);
        send({ type: 'click', ...at });
      }
      e.preventDefault();
      return;
    }
    if (e.key.length === 1 && !e.ctrlKey) {
      send({ type: 'type', text: e.key });
    } else if (NAMED_KEYS.has(e.key)) {
      send({ type: 'key', key: e.key });
    } else if (e.ctrlKey && /^[a-z]$/i.test(e.key)) {
      send({ type: 'key', key: `Control+${e.key.toLowerCase()}` });
    } else {
      return;
    }
    e.preventDefault();
  };

  const onWheel = (e: WheelEvent<HTMLImageElement>) => {
    const p = pagePoint(e);
    const w = wheel.current ?? { ...p, deltaX: 0, deltaY: 0 };
    w.deltaX += e.deltaX;
    w.deltaY += e.deltaY;
    wheel.current = w;
    w.timer ??= window.setTimeout(() => {
      wheel.current = null;
      send({ type: 'scroll', x: w.x, y: w.y, deltaX: Math.round(w.deltaX), deltaY: Math.round(w.deltaY) });
    }, WHEEL_BATCH_MS);
  };

  const answer = async (a: 'done' | 'giveUp') => {
    setBusy(true);
    try {
      await chain.current;
      await ok(api.POST('/api/jobs/{id}/handoff', { params: { path: { id: jobId } }, body: { answer: a } }));
      onAnswered();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card live-view" aria-labelledby="live-heading">
      <h2 id="live-heading">{t('live.title')}</h2>
      <p>{t('live.intro')}</p>
      {handoff && (
        <dl className="facts">
          <dt>{t('live.reason')}</dt><dd>{handoff.reason}</dd>
          <dt>{t('live.until')}</dt><dd>{f.dateTime(new Date(handoff.expiresAt).toISOString())}</dd>
        </dl>
      )}
      <p id="live-help" className="hint">{t('live.help')}</p>
      {ended ? <p role="status">{t('live.ended')}</p> : (
        <div className="live-screen" tabIndex={0} role="group" aria-label={t('live.screenLabel')} aria-describedby="live-help" onKeyDown={onKeyDown}>
          {frame
            ? <img src={frame.src} alt={t('live.alt')} onClick={onClick} onWheel={onWheel} draggable={false} />
            : <p role="status">{t('live.connecting')}</p>}
          {frame && pointer && (
            <span className="live-pointer" aria-hidden="true"
              style={{ left: `${(pointer.x / frame.viewportWidth) * 100}%`, top: `${(pointer.y / frame.viewportHeight) * 100}%` }} />
          )}
        </div>
      )}
      {!ended && pointer && <p className="hint" role="status">{t('live.pointer', { x: pointer.x, y: pointer.y })}</p>}
      {error !== null && <ErrorMessage error={error} />}
      <div className="actions">
        <button type="button" className="primary" disabled={busy || ended} onClick={() => void answer('done')}>{t('live.done')}</button>
        <button type="button" className="danger" disabled={busy || ended} onClick={() => void answer('giveUp')}>{t('live.giveUp')}</button>
      </div>
    </section>
  );
}
