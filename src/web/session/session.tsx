/**
 * Who is signed in: GET /api/session through TanStack Query (null when logged out). When any call answers 401 the
 * session is set to null and marked as ended, and RequireSession sends the user to /login?next=<where they were>;
 * forms keep what was typed in drafts (lib/drafts.ts), so after logging in they find it again.
 */
import { useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { useEffect, type ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import { api, ApiError, onSessionEnded, toApiError } from '../api/client.ts';
import { ErrorMessage } from '../components/error-message.tsx';
import { Loading } from '../components/loading.tsx';

export const SESSION_KEY = ['session'] as const;

async function fetchSession() {
  const r = await api.GET('/api/session');
  if (r.response.status === 401) return null;
  if (r.error !== undefined) throw toApiError(r.response.status, r.error);
  return r.data;
}

export type Session = NonNullable<Awaited<ReturnType<typeof fetchSession>>>;

export function useSession() {
  return useQuery({ queryKey: SESSION_KEY, queryFn: fetchSession, staleTime: 5 * 60_000, retry: (n, e) => !(e instanceof ApiError && e.status > 0 && e.status < 500) && n < 2 });
}

let ended = false;
/** Whether the last session ended under the user (rather than by logging out); reading it clears it. */
export function takeSessionEnded(): boolean {
  const was = ended;
  ended = false;
  return was;
}

/** Keeps the session query in step with the API's 401 answers. */
export function SessionWatch({ client }: { client: QueryClient }) {
  useEffect(() => {
    onSessionEnded(() => {
      if (client.getQueryData(SESSION_KEY)) {
        ended = true;
        client.setQueryData(SESSION_KEY, null);
      }
    });
    return () => onSessionEnded(undefined);
  }, [client]);
  return null;
}

/** Renders its children for a signed-in user; sends anyone else to log in, remembering where they were. */
export function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (session.isPending) return <Loading />;
  if (session.isError) return <ErrorMessage error={session.error} onRetry={() => void session.refetch()} />;
  if (!session.data) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}${takeSessionEnded() ? '&expired=1' : ''}`} replace />;
  }
  return <>{children}</>;
}

/** After a login: the session is known, and nothing cached under the previous one (or none) is kept. */
export function useSignedIn() {
  const client = useQueryClient();
  return (session: Session) => {
    client.clear();
    client.setQueryData(SESSION_KEY, session);
  };
}
