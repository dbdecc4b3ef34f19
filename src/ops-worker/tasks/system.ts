/**
 * The two ops tasks (docs/operations.md "Tasks"):
 *   - system.check: which version runs (from the running containers), which newer one the registry offers; changes
 *     nothing.
 *   - system.update: login (when a token is configured) → record what runs → pull → up → health → migrations (when
 *     asked); any failure after the record rolls back to the images recorded, waits for health again, and fails with
 *     the step and its output tail.
 */
import { readFile } from 'node:fs/promises';
import { isSriError } from '../../shared/errors.ts';
import type { OpsResultMessage, SystemUpdateParams } from '../../shared/ops/schemas.ts';
import {
  HEALTH_BODY, LOGIN_BODY, MIGRATE_BODY, parseRecord, PULL_BODY, RECORD_BODY, RETAG_BODY, tagOf, UP_BODY, type RunningService,
} from './compose.ts';
import type { TaskContext } from './context.ts';
import { isNewer, listTags, versionTags } from './registry.ts';

export type TaskOutcome = Pick<OpsResultMessage, 'status' | 'details' | 'error'>;

class StepFailed extends Error {
  constructor(readonly step: string, readonly outputTail: string[], message: string) { super(message); }
}

async function registryToken(ctx: TaskContext): Promise<string | undefined> {
  const file = ctx.config.registryTokenFile;
  if (!file) return undefined;
  return (await readFile(file, 'utf8')).trim() || undefined;
}

async function record(ctx: TaskContext, services: readonly string[]): Promise<RunningService[]> {
  const o = await ctx.step({ name: 'record', command: 'compose ps -q; docker inspect (service, image, image id of each container)', body: RECORD_BODY, env: { SRI_SERVICES: services.join(' ') } });
  if (!o.ok) throw new StepFailed('record', o.outputTail, 'Reading what runs now failed.');
  return parseRecord(o.output);
}

async function registryVersions(ctx: TaskContext): Promise<{ versions: string[]; error?: string }> {
  const c = ctx.config;
  if (!c.registry) return { versions: [], error: 'OPS_REGISTRY is not set: no registry to ask' };
  const started = Date.now();
  try {
    const token = await registryToken(ctx);
    const tags = await listTags({
      registry: c.registry, insecure: c.registryInsecure, repository: c.imageRepository, signal: ctx.signal,
      ...(c.registryUser ? { user: c.registryUser } : {}), ...(token ? { token } : {}),
    });
    const versions = versionTags(tags);
    ctx.log(`registry ${c.registry}/${c.imageRepository} offers ${versions.join(', ') || 'no version tag'}`);
    ctx.record('registry-tags', `GET /v2/${c.imageRepository}/tags/list on ${c.registry}`, {
      startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, exitCode: 0, ok: true, timedOut: false, aborted: false, outputTail: versions,
    });
    return { versions };
  } catch (e) {
    const message = (e as Error).message;
    ctx.record('registry-tags', `GET /v2/${c.imageRepository}/tags/list on ${c.registry}`, {
      startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, exitCode: 1, ok: false, timedOut: false, aborted: false, outputTail: [message],
    });
    return { versions: [], error: message };
  }
}

const runningVersionOf = (running: readonly RunningService[]) => {
  const tags = [...new Set(running.map((r) => tagOf(r.image)).filter((t): t is string => !!t))];
  return tags.length === 1 ? tags[0]! : tags.length ? tags.join(',') : null;
};

export async function systemCheck(ctx: TaskContext): Promise<TaskOutcome> {
  try {
    const running = await record(ctx, []);
    const runningVersion = runningVersionOf(running);
    const { versions, error } = await registryVersions(ctx);
    const latest = versions.at(-1) ?? null;
    const updateAvailable = latest !== null && isNewer(latest, runningVersion);
    ctx.log(`running ${runningVersion ?? 'nothing'}; newest offered ${latest ?? 'unknown'}${updateAvailable ? ' — an update is available' : ''}`);
    return {
      status: error ? 'failed' : 'done',
      details: { runningVersion, latestVersion: latest, updateAvailable, availableVersions: versions, services: running.map((r) => r.service) },
      ...(error ? { error: { code: 'OPS_REGISTRY_UNAVAILABLE', message: error, step: 'registry-tags' } } : {}),
    };
  } catch (e) {
    return failure(e);
  }
}

function failure(e: unknown): TaskOutcome {
  if (e instanceof StepFailed) return { status: 'failed', error: { code: 'OPS_STEP_FAILED', message: e.message, step: e.step, outputTail: e.outputTail } };
  if (isSriError(e)) return { status: 'failed', error: { code: e.code, message: e.message } };
  return { status: 'failed', error: { code: 'INTERNAL', message: (e as Error).message } };
}

export async function systemUpdate(ctx: TaskContext, params: SystemUpdateParams): Promise<TaskOutcome> {
  const c = ctx.config;
  const services = params.services ?? [];
  const env = (version: string) => ({ SRI_SERVICES: services.join(' '), [c.versionVariable]: version });
  let running: RunningService[] = [];
  let target = params.targetVersion;
  let runningVersion: string | null = null;
  try {
    const token = await registryToken(ctx);
    if (token && c.registry) {
      const o = await ctx.step({
        name: 'login', command: `docker login --username $OPS_REGISTRY_USER --password-stdin ${c.registry} (token on stdin)`, body: LOGIN_BODY,
        secrets: { registryToken: token }, env: { OPS_REGISTRY: c.registry, OPS_REGISTRY_USER: c.registryUser ?? 'sri' },
      });
      if (!o.ok) throw new StepFailed('login', o.outputTail, `Logging in to ${c.registry} failed.`);
    }
    running = await record(ctx, services);
    runningVersion = runningVersionOf(running);
    if (!target) {
      const { versions, error } = await registryVersions(ctx);
      target = versions.at(-1);
      if (!target) throw new StepFailed('registry-tags', error ? [error] : [], 'No target version: give targetVersion, or set OPS_REGISTRY so the newest version can be read.');
    }
    ctx.log(`updating ${services.length ? services.join(', ') : 'every service'} from ${runningVersion ?? 'nothing'} to ${target}`);
  } catch (e) {
    return { ...failure(e), details: { runningVersion, ...(target ? { targetVersion: target } : {}) } };
  }

  const details = { runningVersion, targetVersion: target, services: running.map((r) => r.service) };
  try {
    for (const [name, command, body] of [
      ['pull', `compose pull ${services.join(' ')} (${c.versionVariable}=${target})`, PULL_BODY],
      ['up', `compose up -d --no-build ${services.join(' ')} (${c.versionVariable}=${target})`, UP_BODY],
    ] as const) {
      const o = await ctx.step({ name, command, body, env: env(target) });
      if (!o.ok) throw new StepFailed(name, o.outputTail, `compose ${name} of ${target} failed.`);
    }
    await waitHealthy(ctx, 'health', env(target), services);
    if (params.runMigrations) {
      const o = await ctx.step({
        name: 'migrate', command: `docker run --rm <${c.migrateService}'s new image, its environment and network> ${c.migrateCommand}`, body: MIGRATE_BODY,
        env: { ...env(target), SRI_MIGRATE_SERVICE: c.migrateService, SRI_MIGRATE_COMMAND: c.migrateCommand },
      });
      if (!o.ok) throw new StepFailed('migrate', o.outputTail, 'The migrations failed.');
    }
    ctx.log(`update to ${target} done; every service is healthy`);
    return { status: 'done', details };
  } catch (e) {
    const failed = failure(e);
    ctx.log(`update to ${target} failed at ${failed.error?.step ?? 'a step'}; rolling back to ${runningVersion ?? 'nothing'}`, 'error');
    const rollback = await rollBack(ctx, running, runningVersion, services);
    return { ...failed, details: { ...details, rolledBack: rollback.attempted, rollbackHealthy: rollback.healthy } };
  }
}

/**
 * The health step (containers), then each OPS_HEALTH_URLS entry of an updated service (`services` empty: all) polled
 * until it answers 2xx — the way to see a service without a container health check (the API's /ready, a worker's
 * /readyz) — each within OPS_HEALTH_TIMEOUT_MS.
 */
async function waitHealthy(ctx: TaskContext, name: string, env: Record<string, string>, services: readonly string[], rollback = false): Promise<void> {
  const c = ctx.config;
  const o = await ctx.step({
    rollback, name, command: 'docker inspect health of each container (or its own health check with docker exec), until healthy', body: HEALTH_BODY,
    env: { ...env, SRI_HEALTH_TIMEOUT_S: String(Math.ceil(c.healthTimeoutMs / 1000)) }, timeoutMs: c.healthTimeoutMs + 60_000,
  });
  if (!o.ok) throw new StepFailed(name, o.outputTail, 'The services did not become healthy in time (OPS_HEALTH_TIMEOUT_MS).');
  for (const entry of c.healthUrls) {
    const [service, url] = [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)];
    if (services.length && !services.includes(service)) continue;
    const started = Date.now();
    const until = started + c.healthTimeoutMs;
    let last = '';
    let ok = false;
    while (!ok && Date.now() < until && (rollback || !ctx.signal.aborted)) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
        last = `${service}: GET ${url} → ${res.status}`;
        ok = res.ok;
      } catch (e) {
        last = `${service}: GET ${url} → ${(e as Error).message}`;
      }
      if (!ok) await new Promise((r) => setTimeout(r, 1000));
    }
    ctx.log(last, ok ? 'info' : 'error');
    ctx.record(`${name}-url`, `GET ${url} (${service})`, {
      startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, exitCode: ok ? 0 : 1, ok, timedOut: !ok, aborted: false, outputTail: [last],
    });
    if (!ok) throw new StepFailed(`${name}-url`, [last], `${service} is not ready at ${url}.`);
  }
}

async function rollBack(ctx: TaskContext, running: readonly RunningService[], version: string | null, services: readonly string[]): Promise<{ attempted: boolean; healthy: boolean }> {
  if (!running.length || !version || version.includes(',')) {
    ctx.log('nothing recorded to roll back to (no service ran a single known version before the update)', 'warn');
    return { attempted: false, healthy: false };
  }
  const env = { SRI_SERVICES: services.join(' '), [ctx.config.versionVariable]: version };
  const retag = await ctx.step({
    rollback: true, name: 'rollback-retag', command: 'docker tag <recorded image id> <image it ran as>, for each service', body: RETAG_BODY,
    env: { SRI_ROLLBACK_IMAGES: running.map((r) => `${r.image} ${r.imageId}`).join('\n') },
  });
  const up = retag.ok ? await ctx.step({ rollback: true, name: 'rollback-up', command: `compose up -d --no-build ${services.join(' ')} (${ctx.config.versionVariable}=${version})`, body: UP_BODY, env }) : retag;
  if (!up.ok) return { attempted: true, healthy: false };
  try {
    await waitHealthy(ctx, 'rollback-health', env, services, true);
    ctx.log(`rolled back to ${version}; every service is healthy`);
    return { attempted: true, healthy: true };
  } catch {
    ctx.log(`rolled back to ${version}, but the services are not healthy: look at them now`, 'error');
    return { attempted: true, healthy: false };
  }
}
