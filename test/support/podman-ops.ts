/**
 * The privileged operations worker on a real container engine, for the tests that drive it (test/ops-worker/
 * podman.test.ts through the API, test/web/system-page.test.ts through the dashboard): podman serving the Docker API
 * on a socket of its own, docker-compose and the docker CLI against it, a local docker-registry, a Redis loaded with
 * deploy/redis/users.acl, the API on the sri-api user with an OPERATOR_TOKEN (serving dist/web when it is built), and
 * `sri ops-worker` as a process of its own on the sri-ops user.
 *
 * A small service (busybox httpd with a health check, base image imported from busybox-static: no internet here) is
 * published as the versions asked for — `broken` ones have no /www/health, so they fail their health check — and the
 * first version runs under compose.
 *
 * `start()` may fail half-way: `stop()` removes whatever was made, at any point (call it from the test's after()).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { writeUsersAcl } from './acl.ts';
import { TEST_JWT_SECRET } from './api.ts';
import { startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from './services.ts';
import { openTestDatabase } from './database.ts';

const execFileAsync = promisify(execFile);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OPS_USERS = ['admin', 'api', 'worker', 'enrol', 'ops'] as const;
export type OpsUser = (typeof OPS_USERS)[number];
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** What podman needs here, by Debian package; the first missing one (undefined: all there). */
export function missingPodmanPackage(): string | undefined {
  const need: [string, () => boolean][] = [
    ['podman', () => has('podman')], ['runc', () => has('runc')], ['docker-compose', () => has('docker-compose')],
    ['docker-registry', () => has('docker-registry')], ['busybox-static', () => existsSync('/bin/busybox')],
    ['docker CLI (docker-cli / docker.io)', () => has('docker')],
  ];
  return need.find(([, ok]) => !ok())?.[0];
}

/** The skip message of a suite that needs podman, or false when it can run. */
export function podmanSkip(): string | false {
  const missing = missingPodmanPackage();
  return missing ? `podman cannot run here: install the Debian package ${missing} (apt-get install -y podman runc docker-compose docker-registry busybox-static)` : false;
}

interface Env { [k: string]: string }

/**
 * The stack's OPS_HEALTH_TIMEOUT_MS. A healthy version passes its first health check (the check runs as soon as
 * `compose up` returns, and the service answers at once): the bound only decides how long a broken version's update
 * waits before it rolls back, which the tests that roll back wait out in full. 10 s still lets a slow first check
 * (up to ~11 s seen at load 11) be followed by a second.
 */
export const OPS_HEALTH_TIMEOUT_MS = 10_000;

export interface PodmanOpsOptions {
  operatorToken: string;
  /** Versions published, in order; the first one runs at the start. @default ['1', '2', '3'] */
  versions?: readonly string[];
  /** Versions that fail their health check. @default ['3'] */
  broken?: readonly string[];
  /** Extra settings of the API. */
  apiEnv?: Env;
  /** Name of the API's logger. @default 'api-ops' */
  logName?: string;
  /**
   * The registry asks for a login (htpasswd, a bcrypt entry for `user` and `token`). Its address is then
   * `localhost:<port>`: podman's Docker API checks a `docker login` over plain http only for `localhost:` addresses.
   * The ops worker gets OPS_REGISTRY_USER and OPS_REGISTRY_TOKEN_FILE (`registryTokenFile`, holding `token` until
   * `setRegistryToken`); pushes pass `--creds`, the first pull logs in with a docker config of its own.
   */
  registryAuth?: { user: string; token: string };
  /**
   * A second compose service, `api`: the same images without a health check, published on 127.0.0.1:`apiPort`;
   * its versions serve /ready (the broken ones do not).
   */
  readyService?: boolean;
  /** Extra settings of the first ops worker (started by `start()`), read once the stack's ports are known. */
  opsWorkerEnv?: (stack: PodmanOpsStack) => Env;
}

/** A bcrypt htpasswd entry's hash (docker-registry's htpasswd auth takes bcrypt only), by Python's crypt module. */
export function bcryptHash(password: string): string {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, ['-W', 'ignore', '-c', 'import crypt, sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))'],
    { input: password, encoding: 'utf8' });
  const hash = r.stdout?.trim() ?? '';
  if (r.status !== 0 || !hash.startsWith('$2')) throw new Error(`bcrypt of the registry token with ${python} failed (Python 3.12 or older with its crypt module is needed): ${r.stderr ?? r.error?.message}`);
  return hash;
}

export class PodmanOpsStack {
  readonly passwords = Object.fromEntries(OPS_USERS.map((u) => [u, randomBytes(16).toString('hex')])) as Record<OpsUser, string>;
  readonly project = `sriops${randomBytes(3).toString('hex')}`;
  dir!: ReturnType<typeof tempDir>;
  registry = '';
  composeFile = '';
  /** Host port of the `api` service (readyService). */
  apiPort = 0;
  redisServer!: EmbeddedRedis;
  s3!: Awaited<ReturnType<typeof startTestS3>>;
  db!: Database;
  api!: ApiHandle;
  opsWorker: ChildProcess | undefined;
  private engineEnv: Env = {};
  private readonly children: ChildProcess[] = [];
  private podmanReady = false;
  private dirMade = false;

  constructor(private readonly opts: PodmanOpsOptions) {}

  /** Runs a command against this stack's engine (in its directory); throws with its output when it fails. */
  run(cmd: string, args: string[], env: Env = {}, timeoutMs = 180_000): string {
    const r = spawnSync(cmd, args, { env: { ...this.engineEnv, ...env }, encoding: 'utf8', timeout: timeoutMs, cwd: this.dir.path });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** `run`, without blocking this process meanwhile (the stack's own services start beside it). */
  async runAsync(cmd: string, args: string[], env: Env = {}, timeoutMs = 180_000): Promise<string> {
    try {
      const { stdout } = await execFileAsync(cmd, args, {
        env: { ...this.engineEnv, ...env }, cwd: this.dir.path, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8',
      });
      return stdout;
    } catch (e) {
      const { code, signal, stderr = '', stdout = '' } = e as { code?: number | string; signal?: string; stderr?: string; stdout?: string };
      throw new Error(`${cmd} ${args.join(' ')} → ${code ?? signal}: ${stderr}${stdout}`);
    }
  }

  private startChild(cmd: string, args: string[], env: Env): ChildProcess {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    c.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
    c.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
    (c as ChildProcess & { output: () => string }).output = () => out;
    this.children.push(c);
    return c;
  }

  /** Stops a child process (SIGTERM, SIGKILL after 15 s unless `signal` says otherwise) and waits for it. */
  async stopChild(c: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  /** The images of the compose project's running containers. */
  runningImages(): string[] {
    return this.run('sh', ['-c', `for id in $(docker-compose -f "${this.composeFile}" -p ${this.project} ps -q); do docker inspect --format '{{.Config.Image}}' "$id"; done`], { SRI_VERSION: this.versions[0]! })
      .trim().split('\n').filter(Boolean);
  }

  /** The image of each compose service's running container, by service. */
  serviceImages(): Record<string, string> {
    const out = this.run('sh', ['-c', `for id in $(docker-compose -f "${this.composeFile}" -p ${this.project} ps -q); do docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}}' "$id"; done`], { SRI_VERSION: this.versions[0]! });
    return Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
  }

  private get versions(): readonly string[] {
    return this.opts.versions ?? ['1', '2', '3'];
  }

  /** The file the ops worker reads its registry token from (registryAuth). */
  get registryTokenFile(): string {
    return join(this.dir.path, 'registry-token');
  }

  /** What the ops worker's next task reads as its registry token (it reads the file at each task). */
  setRegistryToken(token: string): void {
    writeFileSync(this.registryTokenFile, `${token}\n`, { mode: 0o600 });
  }

  opsWorkerEnv(): Env {
    const p = this.dir.path;
    const auth = this.opts.registryAuth;
    return {
      ...this.engineEnv,
      REDIS_URL: `redis://sri-ops:${this.passwords.ops}@127.0.0.1:${this.redisServer.port}`,
      OPS_WORKER_ID: 'ops-test', OPS_WORK_DIR: join(p, 'ops-work'), OPS_COMPOSE_FILE: this.composeFile, OPS_COMPOSE_PROJECT: this.project,
      OPS_COMPOSE_COMMAND: 'docker-compose', OPS_REGISTRY: this.registry, OPS_REGISTRY_INSECURE: 'true', OPS_IMAGE_REPOSITORY: 'sri/platform',
      OPS_HEALTH_TIMEOUT_MS: String(OPS_HEALTH_TIMEOUT_MS), OPS_LEASE_MS: '3000', OPS_POLL_INTERVAL_MS: '200', OPS_MIGRATE_SERVICE: 'web', OPS_MIGRATE_COMMAND: 'cat /www/version',
      LOG_DIR: join(p, 'logs'), LOG_LEVEL: 'info',
      ...(auth ? { OPS_REGISTRY_USER: auth.user, OPS_REGISTRY_TOKEN_FILE: this.registryTokenFile } : {}),
    };
  }

  /** `sri ops-worker` as a process of its own (kept in `opsWorker`). */
  startOpsWorker(env: Env = {}): ChildProcess {
    this.opsWorker = this.startChild(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'ops-worker'], { ...this.opsWorkerEnv(), ...env });
    return this.opsWorker;
  }

  /** What the ops worker process printed so far (its pino log). */
  opsWorkerOutput(): string {
    return (this.opsWorker as (ChildProcess & { output?: () => string }) | undefined)?.output?.() ?? '';
  }

  async start(): Promise<void> {
    this.dir = tempDir('sri-ops-podman-');
    this.dirMade = true;
    const p = this.dir.path;
    mkdirSync(join(p, 'home'), { recursive: true });
    mkdirSync(join(p, 'docker-config'), { recursive: true });
    writeFileSync(join(p, 'docker-config/config.json'), '{}\n');
    writeFileSync(join(p, 'containers.conf'), '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
    writeFileSync(join(p, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${p}/graph"\nrunroot = "${p}/run"\n`);
    const registryPort = await freePort();
    const auth = this.opts.registryAuth;
    const registry = `${auth ? 'localhost' : '127.0.0.1'}:${registryPort}`;
    this.registry = registry;
    // podman reads registries.conf once, at its start.
    writeFileSync(join(p, 'registries.conf'), `[[registry]]\nlocation = "${registry}"\ninsecure = true\n`);
    // Quiet: its output is a pipe read by this process, which run()'s spawnSync blocks; a full pipe would stall it.
    let registryYml = `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${p}/registry-data\nhttp:\n  addr: 127.0.0.1:${registryPort}\n`;
    if (auth) {
      writeFileSync(join(p, 'htpasswd'), `${auth.user}:${bcryptHash(auth.token)}\n`);
      registryYml += `auth:\n  htpasswd:\n    realm: sri-ops-test\n    path: ${p}/htpasswd\n`;
      this.setRegistryToken(auth.token);
    }
    writeFileSync(join(p, 'registry.yml'), registryYml);
    const creds = auth ? ['--creds', `${auth.user}:${auth.token}`] : [];
    this.engineEnv = {
      PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: join(p, 'home'),
      CONTAINERS_CONF: join(p, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(p, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(p, 'registries.conf'), DOCKER_HOST: `unix://${p}/podman.sock`, DOCKER_CONFIG: join(p, 'docker-config'),
    };
    this.startChild('docker-registry', ['serve', join(p, 'registry.yml')], this.engineEnv);
    this.startChild('podman', ['system', 'service', '--time=0', `unix://${p}/podman.sock`], this.engineEnv);
    await waitFor(() => existsSync(join(p, 'podman.sock')) && fetch(`http://127.0.0.1:${registryPort}/v2/`).then((r) => r.ok || (!!auth && r.status === 401), () => false), { timeoutMs: 60_000, what: 'podman socket and registry' });

    this.composeFile = join(p, 'compose.yml');
    if (this.opts.readyService) this.apiPort = await freePort();

    // Redis, S3, the database, the API and the ops worker start while podman builds and runs the images: the two
    // are independent until the first task, and the migrations (PGlite) and podman's builds each take seconds of CPU.
    const aclFile = writeUsersAcl(p, this.passwords).path;
    const services = (async () => {
      [this.redisServer, this.s3, this.db] = await Promise.all([
        freePort().then((port) => startEmbeddedRedis({ dir: join(p, 'redis'), port, extraArgs: ['--aclfile', aclFile] })),
        startTestS3(), openTestDatabase(),
      ]);
      await migrate(this.db);
      const config = loadApiConfig({
        JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: `redis://sri-api:${this.passwords.api}@127.0.0.1:${this.redisServer.port}`,
        S3_ENDPOINT: this.s3.endpoint, PORT: '0', LOG_LEVEL: 'silent', OPERATOR_TOKEN: this.opts.operatorToken, ...this.opts.apiEnv,
      });
      this.api = await startApi(config, { db: this.db, logger: createLogger({ name: this.opts.logName ?? 'api-ops', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }) });
      this.startOpsWorker(this.opts.opsWorkerEnv?.(this) ?? {});
    })();
    services.catch(() => { /* awaited below; handled here so a failure meanwhile is not an unhandled rejection */ });
    try {
      await this.startEngineSide(creds);
    } catch (e) {
      // What the other half made is kept in the fields, for stop().
      await services.catch(() => {});
      throw e;
    }
    await services;
  }

  /** The images of every version in the registry, and the first version running under compose. */
  private async startEngineSide(creds: string[]): Promise<void> {
    const p = this.dir.path;
    const registry = this.registry;
    const auth = this.opts.registryAuth;
    // A base image from busybox-static, then the versions of the service: a broken one has no /www/health.
    mkdirSync(join(p, 'rootfs/bin'), { recursive: true });
    await this.runAsync('sh', ['-c', `cp /bin/busybox ${p}/rootfs/bin/ && cd ${p}/rootfs/bin && for a in sh httpd wget cat echo sleep; do ln -sf busybox $a; done && tar -C ${p}/rootfs -cf ${p}/busybox.tar .`]);
    await this.runAsync('podman', ['import', join(p, 'busybox.tar'), 'localhost/sri-ops-test-busybox:base']);
    const broken = this.opts.broken ?? ['3'];
    for (const v of this.versions) {
      const ctx = join(p, `v${v}`);
      mkdirSync(join(ctx, 'www'), { recursive: true });
      writeFileSync(join(ctx, 'www/version'), `${v}\n`);
      if (!broken.includes(v)) {
        writeFileSync(join(ctx, 'www/health'), 'ok\n');
        writeFileSync(join(ctx, 'www/ready'), 'ready\n');
      }
      // httpd runs under a shell that exits on SIGTERM, as a real service stops when its container is stopped:
      // as PID 1 without a handler, httpd would ignore SIGTERM and every `compose up` that replaces a container
      // (each update and rollback) would wait out the engine's 10 s stop timeout before killing it.
      writeFileSync(join(ctx, 'Containerfile'), 'FROM localhost/sri-ops-test-busybox:base\nCOPY www /www\nCMD ["/bin/sh", "-c", "trap \'exit 0\' TERM; /bin/httpd -f -p 8080 -h /www & wait"]\n');
      await this.runAsync('podman', ['build', '-q', '-t', `${registry}/sri/platform:${v}`, ctx]);
      await this.runAsync('podman', ['push', '-q', '--tls-verify=false', ...creds, `${registry}/sri/platform:${v}`]);
      await this.runAsync('podman', ['rmi', `${registry}/sri/platform:${v}`]);
    }
    writeFileSync(this.composeFile, `version: "3"
services:
  web:
    image: ${registry}/sri/platform:\${SRI_VERSION}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 2s
      timeout: 2s
      retries: 2
`);
    if (this.opts.readyService) {
      writeFileSync(this.composeFile, `  api:
    image: ${registry}/sri/platform:\${SRI_VERSION}
    ports: ["127.0.0.1:${this.apiPort}:8080"]
`, { flag: 'a' });
    }
    const first = { SRI_VERSION: this.versions[0]! };
    // With a login: the first version is pulled with a docker config of the stack's own, so the ops worker's
    // (DOCKER_CONFIG) holds no credential until it logs in.
    const stackDocker = { ...first, DOCKER_CONFIG: join(p, 'docker-config-stack') };
    mkdirSync(stackDocker.DOCKER_CONFIG, { recursive: true });
    if (auth) {
      await this.runAsync('sh', ['-c', 'printf %s "$T" | docker login --username "$U" --password-stdin "$R"'], { ...stackDocker, T: auth.token, U: auth.user, R: registry });
    }
    await this.runAsync('docker-compose', ['-f', this.composeFile, '-p', this.project, 'pull'], stackDocker);
    // Marked before `up`: a failed or cut `up` may have made containers, which stop() then removes.
    this.podmanReady = true;
    await this.runAsync('docker-compose', ['-f', this.composeFile, '-p', this.project, 'up', '-d'], stackDocker);
  }

  async stop(): Promise<void> {
    await this.stopChild(this.opsWorker);
    await this.api?.close();
    await this.db?.close();
    if (this.podmanReady) {
      try {
        this.run('docker-compose', ['-f', this.composeFile, '-p', this.project, 'down', '-t', '1'], { SRI_VERSION: this.versions[0]! });
      } catch { /* reported by the tests */ }
    }
    for (const c of [...this.children].reverse()) await this.stopChild(c);
    // What podman left behind under this directory (conmon keeps an exec session 5 minutes after it ended) and any
    // step a SIGKILLed ops worker left running: found by the directory in their command line, killed by pid.
    for (const pid of this.dirMade ? readdirSync('/proc').filter((d) => /^\d+$/.test(d)) : []) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dir.path)) process.kill(Number(pid), 'SIGKILL');
      } catch { /* gone, or not ours to read */ }
    }
    await Promise.all([this.redisServer?.stop(), this.s3?.close()]);
    // podman's storage holds files owned by the containers' users: removed as root like the rest.
    if (this.dirMade) this.dir.remove();
  }
}

/**
 * The operator API of a stack, as the tests call it: `http` with the operator's bearer token, a task by id, and the
 * wait for a task's final status (done, failed or interrupted).
 */
export function operatorApi(stack: () => PodmanOpsStack, token: string) {
  const http = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(stack().api.url + path, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() as any };
  };
  const task = async (id: string) => (await http('GET', `/api/operator/system/tasks/${id}`)).body.task;
  const waitFinal = (id: string, timeoutMs = 240_000) => waitFor(async () => {
    const t = await task(id);
    return ['done', 'failed', 'interrupted'].includes(t?.status) ? t : undefined;
  }, { timeoutMs, intervalMs: 500, what: `ops task ${id} to finish` });
  return { http, task, waitFinal };
}
