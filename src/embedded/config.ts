/**
 * Settings of the embedded stack (`sri up`). The pieces it starts are swapped for external services by setting
 * REDIS_URL, S3_ENDPOINT or DATABASE_URL, so those have no default here: unset means "start the embedded one".
 * The API and worker read their own tables (src/control-plane/config.ts, src/execution-plane/config.ts) from the
 * environment the stack hands them.
 */
import { z } from 'zod';
import { commonSettings, intSetting, keyringSchema, loadConfig, setting, type ConfigOf } from '../shared/config.ts';
import { MIN_SIGNING_SECRET_LENGTH } from '../shared/signing.ts';

const port = (def: number) => z.coerce.number().int().min(0).max(65535).default(def);

export const embeddedSettings = {
  ...commonSettings,
  redisUrl: setting('REDIS_URL', z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
    'External Redis. Unset: `sri up` starts the system redis-server on EMBEDDED_REDIS_PORT.'),
  s3Endpoint: setting('S3_ENDPOINT', z.url().optional(),
    'External S3-compatible endpoint. Unset: `sri up` starts the embedded S3 server (@20minutes/s3rver, a dev dependency) on EMBEDDED_S3_PORT.'),
  databaseUrl: setting('DATABASE_URL', z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://').optional(),
    'External PostgreSQL. Unset: `sri up` uses embedded PostgreSQL (PGlite) under DATA_DIR/pglite.'),
  scriptSigningSecret: setting('SCRIPT_SIGNING_SECRET',
    z.string().min(MIN_SIGNING_SECRET_LENGTH, `must be at least ${MIN_SIGNING_SECRET_LENGTH} characters`).optional(),
    'HMAC key signing scripts. Unset: `sri up` generates one once and keeps it in DATA_DIR/secrets.json.'),
  jwtSecret: setting('JWT_SECRET', z.string().min(32, 'must be at least 32 characters').optional(),
    'Key signing API tokens. Unset: `sri up` generates one once and keeps it in DATA_DIR/secrets.json.'),
  secretsKeys: setting('SECRETS_KEYS', keyringSchema().optional(),
    'Key of the organisations\' stored secrets (API only). Unset: `sri up` generates one once and keeps it in DATA_DIR/secrets.json.'),
  embeddedRedisPort: setting('EMBEDDED_REDIS_PORT', port(6379), 'Port of the embedded redis-server (127.0.0.1). 0 = any free port.'),
  embeddedS3Port: setting('EMBEDDED_S3_PORT', port(9000), 'Port of the embedded S3 server (127.0.0.1). 0 = any free port.'),
  port: setting('PORT', port(3000), 'Port of the API. 0 = any free port.'),
  host: setting('HOST', z.string().min(1).default('127.0.0.1'), 'Address the API listens on.'),
  demoPort: setting('DEMO_PORT', port(3100), 'Port of the demo portal (127.0.0.1). 0 = any free port.'),
  dataDir: setting('DATA_DIR', z.string().min(1).default('.data'),
    'Directory of embedded data: redis/ (append-only file), s3/, pglite/, secrets.json.'),
  workers: setting('WORKERS', intSetting(1, 0), 'Number of worker processes `sri up` starts (0: none, run `sri worker` yourself).'),
  workerHttpPort: setting('WORKER_HTTP_PORT', z.union([z.literal('off'), port(9464)]).default(9464),
    'First port of the workers\' /metrics, /healthz, /readyz: `sri up` gives worker N the port + N - 1 (0 = any free port, off = none).'),
} as const;

export type EmbeddedConfig = ConfigOf<typeof embeddedSettings>;

export function loadEmbeddedConfig(env: Record<string, string | undefined>): EmbeddedConfig {
  return loadConfig(embeddedSettings, env);
}
