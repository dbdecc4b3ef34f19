/**
 * Lines of a live log over Server-Sent Events — a job's (GET /api/jobs/{id}/logs) or an ops task's
 * (GET /api/operator/system/tasks/{id}/logs): `line` events with one JSON line each, then one `end`. The session
 * cookie goes with them; EventSource reconnects by itself with Last-Event-ID after a dropped connection, and a
 * refused stream (signed out, unknown id) closes it: `failed`.
 */
import { useEffect, useRef, useState } from 'react';

export interface LogLine { ts?: number; level: string; stream: string; message: string }

export type LiveLogState = 'live' | 'ended' | 'failed';

/** Follows `url` while it is given (undefined: not followed); `onEnd` is called once when the log ends. */
export function useLiveLines(url: string | undefined, onEnd?: () => void): { lines: LogLine[]; state: LiveLogState } {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<LiveLogState>('live');
  const ended = useRef(onEnd);
  ended.current = onEnd;
  useEffect(() => {
    if (url === undefined) return;
    setLines([]);
    setState('live');
    const source = new EventSource(url);
    source.addEventListener('line', (e) => {
      try {
        const l = JSON.parse((e as MessageEvent<string>).data) as LogLine;
        setLines((prev) => [...prev, l]);
      } catch {
        // not a line this page can show
      }
    });
    source.addEventListener('end', () => {
      setState('ended');
      source.close();
      ended.current?.();
    });
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) setState('failed'); };
    return () => source.close();
  }, [url]);
  return { lines, state };
}
