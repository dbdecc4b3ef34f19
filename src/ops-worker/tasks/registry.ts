/**
 * Reads the versions the registry offers: the tags of OPS_IMAGE_REPOSITORY from the registry's HTTP API
 * (`GET /v2/<repository>/tags/list`, with the Bearer token dance of Docker Hub-style registries). The token is sent
 * only in an Authorization header to the registry itself and never logged.
 */
import semver from 'semver';
import { SriError } from '../../shared/errors.ts';

export interface RegistryAccess {
  registry: string;
  insecure: boolean;
  repository: string;
  user?: string;
  token?: string;
  signal?: AbortSignal;
}

export async function listTags(a: RegistryAccess): Promise<string[]> {
  const base = `${a.insecure ? 'http' : 'https'}://${a.registry}`;
  const url = `${base}/v2/${a.repository}/tags/list`;
  const basic = a.token ? `Basic ${Buffer.from(`${a.user ?? ''}:${a.token}`).toString('base64')}` : undefined;
  const get = (auth?: string) => fetch(url, { headers: auth ? { authorization: auth } : {}, signal: a.signal ?? AbortSignal.timeout(30_000) });
  let res: Response;
  try {
    res = await get(basic);
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status === 401 && /^Bearer /i.test(challenge)) {
      const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      const tokenUrl = new URL(params['realm'] ?? '');
      if (params['service']) tokenUrl.searchParams.set('service', params['service']);
      tokenUrl.searchParams.set('scope', params['scope'] ?? `repository:${a.repository}:pull`);
      const t = await fetch(tokenUrl, { headers: basic ? { authorization: basic } : {}, signal: a.signal ?? AbortSignal.timeout(30_000) });
      const body = await t.json() as { token?: string; access_token?: string };
      res = await get(`Bearer ${body.token ?? body.access_token ?? ''}`);
    }
  } catch (e) {
    throw new SriError('OPS_REGISTRY_UNAVAILABLE', `The registry ${a.registry} could not be read: ${(e as Error).message}`);
  }
  if (!res.ok) throw new SriError('OPS_REGISTRY_UNAVAILABLE', `The registry ${a.registry} answered ${res.status} for the tags of ${a.repository}.`);
  const body = await res.json() as { tags?: string[] | null };
  return body.tags ?? [];
}

/** The tags that are versions, oldest first (`1`, `1.2`, `v2.0.1`; `latest` and the like are left out). */
export function versionTags(tags: readonly string[]): string[] {
  return tags.filter((t) => semver.coerce(t) !== null && /^v?\d/.test(t))
    .sort((a, b) => semver.compare(semver.coerce(a)!, semver.coerce(b)!) || a.localeCompare(b));
}

/** True when `candidate` is a newer version than `running` (an unknown running version: any version is newer). */
export function isNewer(candidate: string, running: string | null | undefined): boolean {
  const c = semver.coerce(candidate);
  if (!c) return false;
  const r = running ? semver.coerce(running) : null;
  return !r || semver.gt(c, r);
}
