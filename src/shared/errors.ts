/**
 * The one catalogue of error codes a user can meet: job failures (in result messages' `error.code`), API errors
 * (in `{ error: { code, message } }` bodies) and start-up errors. docs/errors.md lists every code; a test checks it.
 */
export interface ErrorSpec {
  /** HTTP status when the error reaches an API caller. */
  readonly status: number;
  /** Whether running the same job again may succeed. */
  readonly retryable: boolean;
  /** Default message: says what happened and what to do next. */
  readonly message: string;
}

function spec(status: number, retryable: boolean, message: string): ErrorSpec {
  return { status, retryable, message };
}

export const ERRORS = {
  // ── Job failures (execution plane) ────────────────────────────────────────────────────────────────────────────
  INVALID_JOB: spec(400, false, 'The job message is not valid JSON of the job schema; fix the producer and push it again.'),
  SCRIPT_INTEGRITY: spec(400, false, 'Script integrity compromised'),
  SCRIPT_UNAUTHORIZED: spec(401, false, 'Unauthorized script'),
  SCRIPT_NOT_FOUND: spec(404, false, 'The script named by scriptKey is not in the scripts bucket; re-create the flow or fix scriptKey.'),
  SESSION_NOT_FOUND: spec(404, false, 'Session not found'),
  SESSION_LOGGED_OUT: spec(409, true, 'The portal logged the session out while the flow ran (its login wall appeared mid-flow): the job is retried, and its next attempt\'s session check signs in again with the provider\'s login flow, or ends SESSION_EXPIRED when none can.'),
  SESSION_EXPIRED: spec(409, false, 'The portal logged the connection\'s session out and no login flow could sign in again (the provider has none, or it failed): connect the provider again with a fresh session, or fix its credentials and TOTP seed; the connection shows as expired until then.'),
  SCRIPT_ERROR: spec(422, false, 'The script threw an error; read execution.log and fix the flow.'),
  SCRIPT_INVALID: spec(422, false, 'The script is not an ES module whose default export is a function; see docs/scripts.md.'),
  EXECUTION_TIMEOUT: spec(504, true, 'The job ran longer than EXECUTION_TIMEOUT (or its timeoutMs) and was stopped.'),
  SCRIPT_CPU_LIMIT: spec(422, false, 'The script used more CPU time than WORKER_SCRIPT_CPU_SECONDS allows and was stopped; look for an endless loop, or raise the limit.'),
  SCRIPT_MEMORY_LIMIT: spec(422, false, 'The script used more memory than WORKER_SCRIPT_MEMORY_MB allows and was stopped; keep less data in the script, or raise the limit.'),
  SCRIPT_RESOURCE_LIMIT: spec(422, false, 'The script went over a per-job limit (calls, screenshots, downloads, download size, message size or egress bytes; the message names it) and was stopped.'),
  SANDBOX_UNAVAILABLE: spec(500, false, 'The worker cannot isolate scripts as WORKER_SANDBOX asks (bubblewrap or prlimit missing, or user namespaces not allowed); install bubblewrap, allow unprivileged user namespaces, or set WORKER_SANDBOX=process to run with the weaker process sandbox (see docs/security.md).'),
  BROWSER_ERROR: spec(503, true, 'The browser failed while running the job; it will be restarted. Try the job again.'),
  BROWSER_CRASHED: spec(503, true, 'The job\'s page or browser crashed while it ran (out of memory, a renderer or GPU fault); the job is retried in a fresh context.'),
  UPLOAD_FAILED: spec(503, true, 'Uploading the evidence to S3 failed; check S3_ENDPOINT and the results bucket.'),
  WORKER_SHUTDOWN: spec(503, true, 'The worker stopped before the job could finish; run it again.'),
  EGRESS_POLICY_MISSING: spec(403, false, 'The job\'s browser had no hosts it may reach, so every request was refused: the job names no allowedHosts and its provider is not in the provider catalogue (sri:provider:{providerName} in Redis). Name allowedHosts in the job, or register the provider in the control plane (the API publishes the catalogue as it starts).'),
  NAVIGATION_ERROR: spec(503, true, 'A page of the portal could not be loaded (network error or navigation timeout); the job is retried.'),
  PORTAL_UNAVAILABLE: spec(503, true, 'The portal answered a page with a 5xx status and the flow failed on it: the portal is down or overloaded. The job is retried; repeated, it opens the provider\'s circuit breaker (docs/providers.md).'),
  CANCELLED: spec(409, false, 'The job was cancelled (POST /api/jobs/{id}/cancel or sri cancel); it did not finish.'),
  JOB_SIGNATURE_INVALID: spec(401, false, 'The job\'s envelope signature is missing (with REQUIRE_JOB_SIGNATURE=true) or does not match its ids: the job was not made by the control plane, or was altered or replayed under other ids. Run jobs through POST /api/run, or sign the envelope as docs/security.md shows.'),
  JOB_REPLAYED: spec(409, false, 'A job with this id has already finished, and a finished job is not run again (REQUIRE_JOB_SIGNATURE is on). Retry a failed job with POST /api/jobs/{id}/retry, or push a new job id.'),
  SECRETS_UNREADABLE: spec(500, false, 'A sealed session or the job\'s secrets could not be decrypted: the API and the workers do not share TRANSPORT_KEYS, or the value was altered. Fix TRANSPORT_KEYS, then connect the provider again or run the job again.'),
  HANDOFF_ABANDONED: spec(409, false, 'The person the job handed off to gave up (the live view\'s "Give up"); finish the step on the portal yourself, or run the job again.'),
  HANDOFF_TIMEOUT: spec(504, false, 'Nobody answered the job\'s hand-off in the live view before its timeout; open the job in the dashboard sooner (the job.waiting_for_user webhook says when), or give the handoff step a longer timeoutMs.'),
  CAPTCHA_UNSOLVED: spec(502, true, 'The CAPTCHA-solving service (CAPTCHA_SOLVER) gave no answer: unreachable, refused (a wrong key, no balance) or too slow. The worker hands the page to a person instead; check CAPTCHA_SOLVER_URL, CAPTCHA_SOLVER_KEY and the service\'s balance.'),
  MODULE_NOT_FOUND: spec(404, false, 'No published version of the module the job names satisfies its range (or the module does not exist); list them with sri module list, publish one with sri module publish DIR, or fix the job\'s module.'),
  MODULE_NOT_ALLOWED: spec(403, false, 'The module\'s manifest does not allow the job\'s organisation to use it (allow.orgs / allow.plans); ask the operator to publish a version that allows it, or run another module.'),
  MODULE_INTEGRITY: spec(400, false, 'A file of the module bundle does not match its checksum in SHA256SUMS, or the bundle is incomplete or malformed: it was altered or damaged in S3 after it was published. Publish the version again under a new version number.'),
  MODULE_SIGNATURE_INVALID: spec(401, false, 'The module bundle\'s signature.json does not verify: altered checksums, a key id not in MODULE_SIGNING_KEYS, or an algorithm this platform does not verify. Both planes must share MODULE_SIGNING_KEYS (or SCRIPT_SIGNING_SECRET); publish the module again.'),
  JOB_POISONED: spec(500, false, 'The job lost its worker on every attempt (the worker died or stopped renewing its lease); it was moved to the dead-letter list. Inspect it with sri dlq show.'),
  SRI_XML_INVALID: spec(422, false, 'The file is not well-formed XML, or holds no SRI electronic document (factura, nota de crédito or débito, comprobante de retención, liquidación de compra, guía de remisión, bare or in an <autorizacion>); the message names the file and the place. Fetch the document again from the portal or the authorisation service.'),
  // ── API errors (control plane) ────────────────────────────────────────────────────────────────────────────────
  VALIDATION_FAILED: spec(400, false, 'The request is not valid; see details for each field.'),
  MALFORMED_BODY: spec(400, false, 'The request body is not valid JSON; send Content-Type: application/json with a JSON object.'),
  PAYLOAD_TOO_LARGE: spec(413, false, 'The request body is too large.'),
  UNSUPPORTED_MEDIA_TYPE: spec(415, false, 'Send the body as application/json.'),
  UNAUTHENTICATED: spec(401, false, 'Send "Authorization: Bearer <token>"; get a token from POST /api/auth/login.'),
  TOKEN_INVALID: spec(401, false, 'The token is invalid or expired; log in again with POST /api/auth/login.'),
  CSRF_TOKEN_INVALID: spec(403, false, 'This request was authenticated by the dashboard\'s session cookie but did not carry its CSRF token in the x-csrf-token header (the value of the sri_csrf cookie); reload the dashboard, or log in again. API callers send "Authorization: Bearer <token>" instead and need no CSRF token.'),
  INVALID_CREDENTIALS: spec(401, false, 'E-mail or password is wrong.'),
  EMAIL_TAKEN: spec(409, false, 'An account with this e-mail already exists; log in instead.'),
  WEAK_PASSWORD: spec(400, false, 'The password is too weak: use at least 12 characters that are not a common password, a keyboard or repeated pattern, a date, or your e-mail or name; a few unrelated words make a good one.'),
  NOT_FOUND: spec(404, false, 'Nothing with this id exists in your organisation.'),
  ROUTE_NOT_FOUND: spec(404, false, 'No such endpoint; see /docs for the API.'),
  FORBIDDEN: spec(403, false, 'Only an administrator of your organisation may do this; ask its admin (the user who registered it).'),
  LAST_ADMIN: spec(409, false, 'This would leave your organisation without an administrator; make another member an admin first.'),
  INVITATION_INVALID: spec(410, false, 'This invitation link is unknown, already used or expired, or its member was removed; ask your organisation\'s admin for a new one.'),
  WEBHOOK_TARGET_REFUSED: spec(400, false, 'The webhook URL points to an address webhooks may not reach (loopback, private, link-local, metadata or another non-public address); use a public host name or address, or set WEBHOOK_ALLOW_PRIVATE=true on the API for receivers on your own network.'),
  JOB_FINAL: spec(409, false, 'The job has already finished (done, failed, cancelled or dead); there is nothing to cancel.'),
  DLQ_ENTRY_TRUNCATED: spec(409, false, 'This dead letter\'s payload was cut because it was too large, so it cannot be requeued; fix the producer and push the job again.'),
  JOB_NOT_RETRYABLE: spec(409, false, 'Only failed or dead jobs can be retried; this one is still queued, running, retrying, done or cancelled.'),
  LOG_NOT_READY: spec(409, true, 'The job has not finished, so its execution.log is not stored yet; follow it live (GET /api/jobs/{id}/logs without follow=false, or sri logs --follow) or ask again when it has finished.'),
  HANDOFF_NOT_WAITING: spec(409, false, 'The job is not waiting for a person now (its hand-off ended, or it never started one), so its live view takes no input; reload the job to see its status.'),
  LOG_NOT_FOUND: spec(404, false, 'The job finished without a stored execution.log (it never ran, or uploading its evidence failed), and its live log has expired.'),
  PROVIDER_NOT_FOUND: spec(404, false, 'No provider with this id; list them with GET /api/providers.'),
  TOTP_SEED_INVALID: spec(400, false, 'A TOTP seed of the connection is not a base32 secret: send the seed the portal showed when you set up an authenticator app (letters A-Z and digits 2-7, at least 16 of them; spaces, dashes and = padding are ignored) — the secret= part of an otpauth:// link, not a six-digit code.'),
  PROVIDER_NOT_CONNECTED: spec(409, false, 'Connect the provider first: POST /api/providers/{id}/connect with your session cookies.'),
  NO_ACTIVE_FLOW: spec(409, false, 'No active flow for this provider; create one with POST /api/flows and activate it.'),
  FLOW_INVALID: spec(400, false, 'The flow cannot be compiled; see details.'),
  FLOW_VERSION_EXISTS: spec(409, false, 'This provider already has a flow with this version in your organisation; pick a new semver version.'),
  MODULE_INVALID: spec(400, false, 'The module bundle cannot be published: its manifest.json or files are not valid (see details); docs/modules.md describes the bundle.'),
  MODULE_VERSION_EXISTS: spec(409, false, 'This version of the module is already published, and a published version is never replaced; raise the version in manifest.json and publish again.'),
  FLOW_TAMPERED: spec(500, false, 'The stored flow script no longer matches its hash or signature; re-create the flow.'),
  SCHEDULE_CRON_INVALID: spec(400, false, 'The schedule\'s cron pattern is not valid or never comes due; use five fields (minute hour day-of-month month day-of-week, e.g. "0 8 * * 1-5") or six with seconds first (e.g. "*/30 * * * * *").'),
  SCHEDULE_TIMEZONE_INVALID: spec(400, false, 'The schedule\'s timezone is not an IANA time zone name; use one such as America/Guayaquil, Europe/Madrid or UTC.'),
  EXPORT_TOO_LARGE: spec(422, false, 'More documents match the filter than one export may hold (50,000); narrow it — a shorter period, one type or one issuer — and export each part.'),
  IDEMPOTENCY_CONFLICT: spec(409, false, 'This Idempotency-Key was used with a different request; use a new key.'),
  SECRETS_NOT_CONFIGURED: spec(503, false, 'Tenant secrets need SECRETS_KEYS on the API (kid:base64key of 32 bytes; docs/configuration.md); ask the operator to set it.'),
  RATE_LIMITED: spec(429, true, 'Too many requests; wait the seconds Retry-After gives, then try again.'),
  QUEUE_FULL: spec(429, true, 'Your organisation already has ORG_MAX_QUEUED_JOBS jobs waiting for a worker; try again once workers have taken some (jobs you cancel leave the queue when a worker reaches them), or ask the operator to raise ORG_MAX_QUEUED_JOBS.'),
  METADATA_TOO_LARGE: spec(413, false, 'The run\'s metadata is larger than RUN_MAX_METADATA_BYTES as JSON; send less (large inputs belong in S3 or in tenant secrets, not in metadata).'),
  TOO_MANY_STREAMS: spec(429, true, 'Too many live log streams are open for you or your organisation on this API instance (LOGS_MAX_STREAMS_PER_USER, LOGS_MAX_STREAMS_PER_ORG); close one (a browser tab, an sri logs --follow) or wait until a followed job ends, then try again.'),
  ACCOUNT_LOCKED: spec(429, true, 'Too many failed logins for this account; it is locked for a while, even for the right password. Wait for the time Retry-After gives, then log in again.'),
  OPERATOR_ONLY: spec(403, false, 'This endpoint is for the platform operator: send "Authorization: Bearer <OPERATOR_TOKEN>". It answers nobody while the API has no OPERATOR_TOKEN.'),
  WORKER_NOT_FOUND: spec(404, false, 'No worker and no enrolment with this id; list enrolments with GET /api/operator/worker-enrolments and workers with sri workers.'),
  WORKER_ACL_UNAVAILABLE: spec(503, false, 'The API\'s Redis user may not manage Redis ACL users (ACL SETUSER/DELUSER/USERS/SAVE, CLIENT KILL); give it the rules of the sri-api line of deploy/redis/users.acl, or run without enrolled workers.'),
  WORKER_CONFIG_CONFLICT: spec(409, true, 'The workers\' live configuration changed since you read it (its version is no longer the one you sent); read it again (GET /api/operator/worker-config, sri config get), apply your change to it and send it with the new version.'),
  // ── Operations worker (docs/operations.md): API answers and the error.code of an ops task's result ────────────
  OPS_BUSY: spec(409, true, 'A system update is already queued or running (its rollback included); wait for its outcome (GET /api/operator/system/tasks/{id}, sri ops logs <id>), then start another.'),
  OPS_TASK_NOT_FOUND: spec(404, false, 'No ops task with this id; list them with GET /api/operator/system/tasks or sri ops tasks.'),
  OPS_STEP_FAILED: spec(500, false, 'A step of the ops task exited with a non-zero code; the task names the step and the tail of its output (an update rolled back to the images that ran before). Fix the cause and start it again.'),
  OPS_INTERRUPTED: spec(500, false, 'The ops worker stopped while it ran the task (killed, or lost Redis for longer than its lease); it is not run again, since an update is not idempotent. Check the services (sri ops check) and start a new update if needed.'),
  OPS_TASK_TIMEOUT: spec(504, false, 'The ops task ran longer than OPS_TASK_TIMEOUT_MS and its step was killed; raise the limit or look at the step that hung.'),
  OPS_REGISTRY_UNAVAILABLE: spec(502, true, 'The image registry (OPS_REGISTRY) could not be read or refused the credentials; check OPS_REGISTRY, OPS_REGISTRY_USER and OPS_REGISTRY_TOKEN_FILE.'),
  SERVICE_UNAVAILABLE: spec(503, true, 'A backing service (PostgreSQL, Redis or S3) is unreachable; check GET /ready.'),
  INTERNAL: spec(500, true, 'Unexpected error; it has been logged with the request id.'),
  // ── Start-up errors (CLI, embedded stack) ─────────────────────────────────────────────────────────────────────
  CONFIG_INVALID: spec(1, false, 'The configuration is invalid; the message names the variable to fix.'),
  PORT_IN_USE: spec(1, false, 'A port the embedded stack needs is taken; the message names the variable that moves it.'),
  DEPENDENCY_MISSING: spec(1, false, 'A system program is missing; the message gives the install command.'),
  BUILD_MISSING: spec(1, false, 'sri found neither tsx to run the sources (src/) nor a build (dist/); run `npm install` in a checkout, or `npm run build` before a production install (npm ci --omit=dev).'),
  EMBEDDED_S3_MISSING: spec(1, false, 'sri up has no S3_ENDPOINT and the embedded S3 server (@20minutes/s3rver, a development dependency) is not installed: set S3_ENDPOINT to an S3 service, or install the development dependencies (npm ci).'),
  REDIS_TOO_OLD: spec(1, false, 'The Redis server is older than 6.2, which the queue needs (LMOVE); upgrade Redis or point REDIS_URL at a newer one.'),
  REDIS_TLS_CERT_EXPIRED: spec(1, false, 'The Redis TLS client certificate (or every CA certificate) has expired; install a renewed one and start again.'),
  ENROLMENT_TOKEN_INVALID: spec(1, false, 'The worker\'s enrolment token is unknown, expired or already used (which one is not said); ask the operator for a new one (POST /api/operator/worker-enrolments).'),
  WORKER_REVOKED: spec(1, false, 'Redis refuses this worker\'s credentials (it was revoked, POST /api/operator/workers/{id}/revoke) or the worker was marked revoked; it exited with code 77 and takes no more jobs. Enrol a new worker if it should run again.'),
  WORKER_REDIS_LOST: spec(1, true, 'The worker could not reach Redis for longer than WORKER_REDIS_MAX_OUTAGE_MS and exited so that its supervisor restarts it; check Redis and REDIS_URL.'),
  WORKER_SHUTDOWN_TIMEOUT: spec(1, true, 'The worker stopped with jobs that had not settled after they were aborted; their leases expire and other workers run them again. Look at the worker\'s log for what the jobs were waiting on.'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** An error with a stable code; `retryable` comes from the catalogue unless given. */
export class SriError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, opts: { details?: unknown; cause?: unknown; retryable?: boolean } = {}) {
    super(message ?? ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SriError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryable = opts.retryable ?? ERRORS[code].retryable;
    this.details = opts.details;
  }
}

export function isSriError(e: unknown): e is SriError {
  return e instanceof SriError;
}
