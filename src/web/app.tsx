/**
 * Routes of the dashboard. Pages load on demand (their code is fetched when first opened), so the first load is the
 * shell, the login page and the libraries only. Server state goes through TanStack Query; the URL holds what a user
 * would bookmark (filters, page, the job open).
 */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense } from 'react';
import { BrowserRouter, Navigate, Route, Routes } from 'react-router';
import { ApiError } from './api/client.ts';
import { Layout } from './components/layout.tsx';
import { Loading } from './components/loading.tsx';
import { LoginPage } from './pages/login/login-page.tsx';
import { RequireOperator } from './session/operator-session.tsx';
import { RequireSession, SessionWatch } from './session/session.tsx';

const RegisterPage = lazy(() => import('./pages/register/register-page.tsx'));
const ProvidersPage = lazy(() => import('./pages/providers/providers-page.tsx'));
const FlowsPage = lazy(() => import('./pages/flows/flows-page.tsx'));
const FlowEditorPage = lazy(() => import('./pages/flow-editor/flow-editor-page.tsx'));
const FlowPage = lazy(() => import('./pages/flow/flow-page.tsx'));
const JobsPage = lazy(() => import('./pages/jobs/jobs-page.tsx'));
const JobPage = lazy(() => import('./pages/job/job-page.tsx'));
const DocumentsPage = lazy(() => import('./pages/documents/documents-page.tsx'));
const MembersPage = lazy(() => import('./pages/members/members-page.tsx'));
const InvitationPage = lazy(() => import('./pages/invitation/invitation-page.tsx'));
const DeadLettersPage = lazy(() => import('./pages/dead-letters/dead-letters-page.tsx'));
const WebhooksPage = lazy(() => import('./pages/webhooks/webhooks-page.tsx'));
const SecretsPage = lazy(() => import('./pages/secrets/secrets-page.tsx'));
const QuotaPage = lazy(() => import('./pages/quota/quota-page.tsx'));
const WorkersPage = lazy(() => import('./pages/workers/workers-page.tsx'));
const OperatorLoginPage = lazy(() => import('./pages/operator-login/operator-login-page.tsx'));
const OperatorLayout = lazy(() => import('./pages/system/operator-layout.tsx'));
const SystemPage = lazy(() => import('./pages/system/system-page.tsx'));
const NotFoundPage = lazy(() => import('./pages/not-found/not-found-page.tsx'));

const client = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not change by asking again; a network error or 5xx may.
      retry: (n, e) => !(e instanceof ApiError && e.status >= 400 && e.status < 500) && n < 2,
      refetchOnWindowFocus: true,
    },
  },
});

export function App() {
  return (
    <QueryClientProvider client={client}>
      <SessionWatch client={client} />
      <BrowserRouter>
        <Suspense fallback={<Loading />}>
          <Routes>
            <Route path="/login" element={<LoginPage />} />
            <Route path="/register" element={<RegisterPage />} />
            <Route path="/invitation" element={<InvitationPage />} />
            {/* The platform operator's pages: a session of their own, no organisation page (docs/dashboard.md). */}
            <Route path="/operator/login" element={<OperatorLoginPage />} />
            <Route element={<RequireOperator><OperatorLayout /></RequireOperator>}>
              <Route path="/operator" element={<Navigate to="/operator/system" replace />} />
              <Route path="/operator/system" element={<SystemPage />} />
            </Route>
            <Route element={<RequireSession><Layout /></RequireSession>}>
              <Route index element={<Navigate to="/jobs" replace />} />
              <Route path="/providers" element={<ProvidersPage />} />
              <Route path="/flows" element={<FlowsPage />} />
              <Route path="/flows/new" element={<FlowEditorPage />} />
              <Route path="/flows/:id" element={<FlowPage />} />
              <Route path="/jobs" element={<JobsPage />} />
              <Route path="/jobs/:id" element={<JobPage />} />
              <Route path="/documents" element={<DocumentsPage />} />
              <Route path="/members" element={<MembersPage />} />
              <Route path="/admin" element={<Navigate to="/admin/dead-letters" replace />} />
              <Route path="/admin/dead-letters" element={<DeadLettersPage />} />
              <Route path="/admin/webhooks" element={<WebhooksPage />} />
              <Route path="/admin/secrets" element={<SecretsPage />} />
              <Route path="/admin/quota" element={<QuotaPage />} />
              <Route path="/admin/workers" element={<WorkersPage />} />
              <Route path="*" element={<NotFoundPage />} />
            </Route>
          </Routes>
        </Suspense>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
