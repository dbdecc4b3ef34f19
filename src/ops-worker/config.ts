/**
 * The operations worker's configuration (docs/configuration.md "Operations worker"): one table, parsed once at
 * start. It needs Redis (its own ACL user, sri-ops) and the container engine; it holds no database, S3 or signing
 * setting. Its steps get only PATH, HOME, the compose variables and OPS_ENGINE_ENV's names (src/ops-worker/executor.ts).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { commonSettings, intSetting, loadConfig, setting, type ConfigOf } from '../shared/config.ts';
import { ServiceName } from '../shared/ops/schemas.ts';

const csv = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

export const opsWorkerSettings = {
  redisUrl: commonSettings.redisUrl,
  redisClusterNodes: commonSettings.redisClusterNodes,
  redisTlsCa: commonSettings.redisTlsCa,
  redisTlsCert: commonSettings.redisTlsCert,
  redisTlsKey: commonSettings.redisTlsKey,
  logLevel: commonSettings.logLevel,
  logDir: commonSettings.logDir,
  opsWorkerId: setting('OPS_WORKER_ID', z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 _ . -')
    .default(() => `ops-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}`),
  'Id of the ops worker in its lease and results. Keep it stable across restarts: a restarted ops worker reports the task its previous process held as interrupted at once. @default ops-<hostname>'),
  workDir: setting('OPS_WORK_DIR', z.string().min(1).default('.data/ops'),
    'Directory (made 0700) of the private temporary directories where each step\'s script is written, run and removed.'),
  taskTimeoutMs: setting('OPS_TASK_TIMEOUT_MS', intSetting(30 * 60_000, 1000),
    'Longest one ops task may run (ms); then its step\'s process group is killed and the task fails (an update rolls back first).'),
  leaseMs: setting('OPS_LEASE_MS', intSetting(30_000, 300),
    'Lease of the running task (ms), renewed every OPS_LEASE_MS / 3; an ops worker silent for longer has its task reported interrupted.'),
  pollIntervalMs: setting('OPS_POLL_INTERVAL_MS', intSetting(1000, 10), 'Milliseconds the ops worker waits when no task is queued.'),
  composeFile: setting('OPS_COMPOSE_FILE', z.string().min(1).default('deploy/docker/docker-compose.yml'), 'The compose file of the platform\'s services.'),
  composeProject: setting('OPS_COMPOSE_PROJECT', z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a compose project name').default('sri'),
    'The compose project name of the platform\'s services.'),
  composeCommand: setting('OPS_COMPOSE_COMMAND', z.enum(['docker compose', 'docker-compose']).default('docker compose'),
    'How compose is run: `docker compose` (plugin) or `docker-compose` (standalone).'),
  versionVariable: setting('OPS_VERSION_VARIABLE', z.string().regex(/^[A-Z_][A-Z0-9_]*$/).default('SRI_VERSION'),
    'The variable the compose file\'s image tags use (`image: …:${SRI_VERSION}`); each step sets it to the version it runs.'),
  registry: setting('OPS_REGISTRY', z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'host or host:port').optional(),
    'The image registry (host[:port]). Set: system.check reads its tags and, with OPS_REGISTRY_TOKEN_FILE, updates log in to it first.'),
  registryUser: setting('OPS_REGISTRY_USER', z.string().min(1).optional(), 'User name for the registry login.'),
  registryTokenFile: setting('OPS_REGISTRY_TOKEN_FILE', z.string().min(1).optional(),
    'File holding the registry token (password). It goes to `docker login --password-stdin` on stdin: never on a command line, never in a log.'),
  registryInsecure: setting('OPS_REGISTRY_INSECURE', z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    'true: the registry\'s API is read over plain http (a registry on this host or a private network only).'),
  imageRepository: setting('OPS_IMAGE_REPOSITORY', z.string().regex(/^[a-z0-9._/-]+$/).default('sri/platform'),
    'The repository (in OPS_REGISTRY) whose tags are the platform\'s versions.'),
  healthTimeoutMs: setting('OPS_HEALTH_TIMEOUT_MS', intSetting(300_000, 1000),
    'How long an update waits for every updated service to become healthy (ms) before it rolls back.'),
  healthUrls: setting('OPS_HEALTH_URLS', csv.pipe(z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}=https?:\/\/\S+$/, 'service=http(s)://… (a compose service name, = , an http(s) URL)'))).default([]),
    'Readiness checks, `service=url,…` (the API\'s /ready, a worker\'s /readyz): after the containers are up, each updated service\'s URL must answer 2xx within OPS_HEALTH_TIMEOUT_MS — the health check of a service whose image has none.'),
  migrateService: setting('OPS_MIGRATE_SERVICE', ServiceName.default('api'),
    'The compose service whose new image runs the migrations (a one-off `docker run --rm` container of its new image, with its environment and network).'),
  migrateCommand: setting('OPS_MIGRATE_COMMAND', z.string().min(1).default('node bin/sri.js migrate'),
    'The command, split on spaces, the one-off migration container runs.'),
  engineEnv: setting('OPS_ENGINE_ENV', csv.pipe(z.array(z.string().regex(/^[A-Z_][A-Z0-9_]*$/))).default(['DOCKER_HOST', 'DOCKER_CONFIG', 'CONTAINERS_CONF', 'CONTAINERS_REGISTRIES_CONF', 'CONTAINERS_STORAGE_CONF', 'XDG_RUNTIME_DIR']),
    'Names of the ops worker\'s environment variables its steps get besides PATH and HOME (how to reach the container engine).'),
} as const;

export type OpsWorkerConfig = ConfigOf<typeof opsWorkerSettings>;

export function loadOpsWorkerConfig(env: Record<string, string | undefined>): OpsWorkerConfig {
  return loadConfig(opsWorkerSettings, env);
}
