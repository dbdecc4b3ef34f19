/**
 * Configuration is parsed once per process from one table that maps each setting to its environment variable,
 * schema and default (docs/configuration.md lists them all). Nothing else reads process.env.
 */
import { z } from 'zod';
import { SriError } from './errors.ts';
import { parseClusterNodes } from './redis.ts';
import { parseKeyring } from './sealed.ts';
import { MIN_SIGNING_SECRET_LENGTH } from './signing.ts';

export interface Setting<T extends z.ZodType = z.ZodType> {
  readonly env: string;
  readonly schema: T;
  readonly doc: string;
}

export type SettingsTable = Record<string, Setting>;
export type ConfigOf<T extends SettingsTable> = { readonly [K in keyof T]: z.output<T[K]['schema']> };

export function setting<T extends z.ZodType>(env: string, schema: T, doc: string): Setting<T> {
  return { env, schema, doc };
}

const intFromEnv = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

/** A keyring `kid:base64key,…` (src/shared/sealed.ts); a malformed or short key fails the start, naming the entry. */
export const keyringSchema = () => z.string().transform((text, ctx) => {
  try {
    return parseKeyring(text);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** Settings both planes share (ARCHITECTURE.md "Configuration"). */
export const commonSettings = {
  redisUrl: setting('REDIS_URL', z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').default('redis://127.0.0.1:6379'),
    'Redis connection URL.'),
  redisClusterNodes: setting('REDIS_CLUSTER_NODES', z.string().transform((text, ctx) => {
    try {
      return parseClusterNodes(text);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `must be host:port,host:port,… (${(e as Error).message})` });
      return z.NEVER;
    }
  }).optional(),
  'Startup nodes of a Redis Cluster, `host:port,host:port,…`. Set: the process uses Redis Cluster (REDIS_URL gives only the scheme, user and password every node shares) and the Cluster key names of docs/redis-keys.md. Unset: one Redis at REDIS_URL.'),
  redisTlsCa: setting('REDIS_TLS_CA', z.string().min(1).optional(),
    'PEM file of the CA(s) that signed the Redis server certificate (rediss:// only). Unset: the system CAs.'),
  redisTlsCert: setting('REDIS_TLS_CERT', z.string().min(1).optional(),
    'PEM file of this process\'s client certificate for Redis (rediss:// only); re-read when it changes.'),
  redisTlsKey: setting('REDIS_TLS_KEY', z.string().min(1).optional(),
    'PEM file of the client certificate\'s private key (with REDIS_TLS_CERT).'),
  s3Endpoint: setting('S3_ENDPOINT', z.url().default('http://127.0.0.1:9000'), 'S3-compatible endpoint (path-style).'),
  s3Region: setting('S3_REGION', z.string().min(1).default('us-east-1'), 'S3 region.'),
  s3AccessKey: setting('S3_ACCESS_KEY', z.string().min(1).default('minioadmin'), 'S3 access key id.'),
  s3SecretKey: setting('S3_SECRET_KEY', z.string().min(1).default('minioadmin'), 'S3 secret access key.'),
  s3ScriptsBucket: setting('S3_SCRIPTS_BUCKET', z.string().min(3).default('sri-scripts'), 'Bucket holding flow scripts.'),
  s3ResultsBucket: setting('S3_RESULTS_BUCKET', z.string().min(3).default('sri-results'), 'Bucket receiving job evidence.'),
  scriptSigningSecret: setting('SCRIPT_SIGNING_SECRET',
    z.string({ error: 'is required' }).min(MIN_SIGNING_SECRET_LENGTH, `must be at least ${MIN_SIGNING_SECRET_LENGTH} characters`),
    'HMAC key signing scripts; identical in both planes. `sri up` generates one under .data/ when unset.'),
  transportKeys: setting('TRANSPORT_KEYS', keyringSchema().optional(),
    'Keys (kid:base64 of 32 bytes, comma-separated, the first seals) encrypting what crosses Redis: sessions written by the API and the secrets of a job; identical in both planes. Unset: one key derived from SCRIPT_SIGNING_SECRET. `sri up` generates one under .data/.'),
  moduleSigningKeys: setting('MODULE_SIGNING_KEYS', keyringSchema().optional(),
    'Keys (kid:base64 of 32 bytes, comma-separated, the first signs) of the HMAC signatures of module bundles (docs/modules.md); identical in both planes, every key verifies, so keys rotate. Unset: one key (id `signing`) derived from SCRIPT_SIGNING_SECRET.'),
  logLevel: setting('LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), 'Log level.'),
  logDir: setting('LOG_DIR', z.string().default('logs'), 'Directory of the log files.'),
  metricsQueueMaxOrgs: setting('METRICS_QUEUE_MAX_ORGS', intFromEnv(50, 0),
    'Organisations with series of their own in sri_queue_length / sri_queue_oldest_job_age_seconds (the deepest queues); 0 = totals only.'),
  otlpEndpoint: setting('OTEL_EXPORTER_OTLP_ENDPOINT', z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    'OpenTelemetry collector (OTLP/HTTP) base URL; spans are POSTed to {url}/v1/traces in batches. Unset: traces are not exported (src/shared/tracing.ts).'),
} as const;

export const intSetting = intFromEnv;

/**
 * Parses `env` against `table`; throws one CONFIG_INVALID error naming every bad variable.
 * Empty strings count as unset so `FOO=` in a .env file falls back to the default.
 */
export function loadConfig<T extends SettingsTable>(table: T, env: Record<string, string | undefined>): ConfigOf<T> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, s] of Object.entries(table)) {
    const raw = env[s.env];
    const r = s.schema.safeParse(raw === '' ? undefined : raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${s.env} ${r.error.issues.map((i) => i.message).join(', ')}`);
  }
  if (problems.length) {
    throw new SriError('CONFIG_INVALID', `Invalid configuration: ${problems.join('; ')}. See docs/configuration.md.`);
  }
  return Object.freeze(out) as ConfigOf<T>;
}
