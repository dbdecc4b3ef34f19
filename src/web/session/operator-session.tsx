/**
 * The platform operator's dashboard session: GET /api/operator/session through TanStack Query (null when not signed
 * in). It is a session of its own (an HttpOnly cookie for /api/operator; the page never holds OPERATOR_TOKEN), apart
 * from an organisation user's: neither opens the other's pages, and the API keeps it so (docs/dashboard.md).
 */
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { Navigate } from 'react-router';
import { api, ApiError, toApiError } from '../api/client.ts';
import { ErrorMessage } from '../components/error-message.tsx';
import { Loading } from '../components/loading.tsx';

export const OPERATOR_SESSION_KEY = ['operator-session'] as const;

async function fetchOperatorSession() {
  const r = await api.GET('/api/operator/session');
  // OPERATOR_ONLY (403): no operator session (none, expired, signed out, or the token changed).
  if (r.response.status === 401 || r.response.status === 403) return null;
  if (r.error !== undefined) throw toApiError(r.response.status, r.error);
  return r.data;
}

export type OperatorSession = NonNullable<Awaited<ReturnType<typeof fetchOperatorSession>>>;

export function useOperatorSession() {
  return useQuery({
    queryKey: OPERATOR_SESSION_KEY, queryFn: fetchOperatorSession, staleTime: 60_000,
    retry: (n, e) => !(e instanceof ApiError && e.status > 0 && e.status < 500) && n < 2,
  });
}

/** When an operator endpoint answers OPERATOR_ONLY, the session has ended: forget it, so the page asks to sign in. */
export function useOperatorSessionEnded() {
  const client = useQueryClient();
  return (error: unknown) => {
    if (error instanceof ApiError && error.code === 'OPERATOR_ONLY') client.setQueryData(OPERATOR_SESSION_KEY, null);
  };
}

/** Renders its children for a signed-in operator; sends anyone else to the operator's sign-in. */
export function RequireOperator({ children }: { children: ReactNode }) {
  const session = useOperatorSession();
  if (session.isPending) return <Loading />;
  if (session.isError) return <ErrorMessage error={session.error} onRetry={() => void session.refetch()} />;
  if (!session.data) return <Navigate to="/operator/login" replace />;
  return <>{children}</>;
}
