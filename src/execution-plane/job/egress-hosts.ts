/**
 * Which hosts a job's browser may reach (ARCHITECTURE.md invariant 5, docs/security.md "Egress"), decided before
 * its browser context opens — deny by default:
 * - the job names allowedHosts and REQUIRE_JOB_SIGNATURE is on: the signed list stands (job-guard.ts verified the
 *   envelope signature, which covers it; the control plane made it from its own catalogue);
 * - the job names allowedHosts, otherwise: those — narrowed to its provider's hosts in the catalogue when the
 *   provider has an entry there: a host must be in both lists, so a job may narrow its provider's hosts, never
 *   widen them (a hand-pushed job naming `evil.example` for provider `sri` reaches nothing of evil.example);
 * - the job names none: its provider's hosts from the catalogue (`sri:provider:{providerName}`, published by the
 *   control plane: src/shared/provider-catalogue.ts);
 * - neither: no host at all. Every request is refused, and a job that was refused anything fails with
 *   EGRESS_POLICY_MISSING (its script may have caught the refusals; the result must still say why it saw nothing).
 */
import type { Redis } from 'ioredis';
import { SriError } from '../../shared/errors.ts';
import { readCatalogueHosts, type CatalogueHosts } from '../../shared/provider-catalogue.ts';
import type { JobMessage } from '../../shared/schemas.ts';
import { EgressPolicy } from './egress-policy.ts';

export type JobHosts =
  /** The job's own list, signed by the control plane; REQUIRE_JOB_SIGNATURE is on. */
  | { readonly source: 'signed'; readonly allowedHosts: readonly string[] }
  /** The job's own list; its provider has no catalogue entry to narrow it by. */
  | { readonly source: 'job'; readonly allowedHosts: readonly string[] }
  /** The job's own list within its provider's: a host must be in both. */
  | { readonly source: 'narrowed'; readonly allowedHosts: readonly string[]; readonly provider: readonly string[] }
  /** The provider's list from the catalogue; the job names none. */
  | { readonly source: 'provider'; readonly allowedHosts: readonly string[] }
  /** No list anywhere: nothing is reachable. `problem`: the catalogue entry exists but is unusable. */
  | { readonly source: 'missing'; readonly problem?: string };

/** Reads the catalogue entry only when it decides something. Redis errors are SERVICE_UNAVAILABLE (retried). */
export async function resolveJobHosts(
  job: Pick<JobMessage, 'allowedHosts' | 'providerName'>, redis: Redis, requireJobSignature: boolean,
): Promise<JobHosts> {
  if (job.allowedHosts !== undefined && requireJobSignature) return { source: 'signed', allowedHosts: job.allowedHosts };
  let entry: CatalogueHosts;
  try {
    entry = await readCatalogueHosts(redis, job.providerName);
  } catch (e) {
    throw new SriError('SERVICE_UNAVAILABLE', `Could not read provider ${job.providerName} from the provider catalogue in Redis: ${(e as Error).message}`, { cause: e });
  }
  if (job.allowedHosts !== undefined) {
    return entry.found
      ? { source: 'narrowed', allowedHosts: job.allowedHosts, provider: entry.allowedHosts }
      : { source: 'job', allowedHosts: job.allowedHosts };
  }
  if (entry.found) return { source: 'provider', allowedHosts: entry.allowedHosts };
  return { source: 'missing', ...(entry.problem ? { problem: entry.problem } : {}) };
}

/** The rules the egress proxy and the route guard apply for these hosts (the same object for both). */
export function egressPolicyOf(hosts: JobHosts): EgressPolicy {
  switch (hosts.source) {
    case 'missing': return new EgressPolicy([]);
    case 'narrowed': return new EgressPolicy(hosts.allowedHosts, hosts.provider);
    default: return new EgressPolicy(hosts.allowedHosts);
  }
}

/** The execution.log line saying which hosts the job may reach, and where they came from. */
export function describeJobHosts(hosts: JobHosts, providerName: string): string {
  const list = (l: readonly string[]) => (l.length ? l.join(', ') : '(none)');
  switch (hosts.source) {
    case 'signed': return `allowed hosts: ${list(hosts.allowedHosts)} (the job's, signed)`;
    case 'job': return `allowed hosts: ${list(hosts.allowedHosts)} (the job's; provider ${providerName} is not in the catalogue)`;
    case 'narrowed': return `allowed hosts: ${list(hosts.allowedHosts)} (the job's), within provider ${providerName}'s ${list(hosts.provider)}: a host must be in both`;
    case 'provider': return `allowed hosts: ${list(hosts.allowedHosts)} (provider ${providerName}'s, from the catalogue)`;
    case 'missing': return `allowed hosts: none — the job names no allowedHosts and provider ${providerName} is not in the provider catalogue${hosts.problem ? ` (its entry is unusable: ${hosts.problem})` : ''}; every request is refused`;
  }
}

export function egressPolicyMissingError(providerName: string, refused: number, cause?: unknown): SriError {
  return new SriError('EGRESS_POLICY_MISSING',
    `No egress policy: the job names no allowedHosts and provider ${providerName} is not in the provider catalogue (sri:provider:${providerName}), so all ${refused} request(s) of its browser were refused. Name allowedHosts in the job, or register provider ${providerName} in the control plane (the API publishes the catalogue to Redis as it starts).`,
    { cause });
}
