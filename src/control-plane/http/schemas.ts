/**
 * Request schemas of the HTTP API. Handlers parse params, query and body with these (types derive from them);
 * the OpenAPI document is generated from the same schemas.
 */
import { z } from 'zod';
import { Cookie } from '../../shared/schemas.ts';
import { AnyStep, MAX_STEPS } from '../flows/steps.ts';

const PathId = z.string().min(1).max(128);
export const IdParams = z.object({ id: PathId });

export const RegisterBody = z.object({
  email: z.email().max(254),
  // Strength is checked separately so that a weak password gets its own code (WEAK_PASSWORD).
  password: z.string().min(1).max(1024),
  name: z.string().trim().min(1).max(200),
  orgName: z.string().trim().min(1).max(200),
});
export type RegisterBody = z.infer<typeof RegisterBody>;

export const LoginBody = z.object({ email: z.string().min(1).max(254), password: z.string().min(1).max(1024) });

export const ConnectBody = z.object({
  cookies: z.array(Cookie).max(500),
  credentials: z.record(z.string().min(1).max(64), z.string().max(4096)).optional(),
});

export const CreateFlowBody = z.object({
  providerId: PathId,
  version: z.string().min(1).max(64),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  // Each step is checked by the compiler, which names the failing step's index (FLOW_INVALID).
  steps: z.array(z.unknown()).max(MAX_STEPS),
});
/** The same body with the step schemas spelt out, for the OpenAPI document only. */
export const CreateFlowBodyDoc = CreateFlowBody.extend({ steps: z.array(AnyStep).max(MAX_STEPS) });

export const RunBody = z.object({
  providerId: PathId,
  metadata: z.record(z.string(), z.unknown()).optional(),
});
export const RunHeaders = z.object({ 'idempotency-key': z.string().min(1).max(200).optional() });

export const JobsQuery = z.object({
  page: z.coerce.number().int().min(1).max(100_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
});
