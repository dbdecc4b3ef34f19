/**
 * The deployment files, validated offline (no container engine or cluster runs here): every YAML parses, the
 * hardening invariants of docs/deploy.md hold in Compose and Kubernetes, the Dockerfile's instructions pass a small
 * lint, and the container health check script works against a real HTTP server.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { apiSettings } from '../../src/control-plane/config.ts';
import { workerSettings } from '../../src/execution-plane/config.ts';
import { keys } from '../../src/shared/keys.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
type Obj = Record<string, any>;

/** Worker environment names that would break invariant 2 (ARCHITECTURE.md): database or API settings. */
const forbiddenForWorker = (name: string) => name === 'DATABASE_URL' || name.startsWith('POSTGRES_') || name.startsWith('API_')
  || name === 'JWT_SECRET' || name.startsWith('PG') || name === 'SECRETS_KEYS' || name === 'OPERATOR_TOKEN';
const workerEnvNames = new Set(Object.values(workerSettings).map((s) => s.env));
const apiEnvNames = new Set(Object.values(apiSettings).map((s) => s.env));

// ── Dockerfile ───────────────────────────────────────────────────────────────────────────────────────────────────

interface Instruction { cmd: string; args: string; line: number }
interface Stage { name: string; from: string; instructions: Instruction[] }

/** Splits a Dockerfile into instructions (comments dropped, `\` continuations joined) grouped by stage. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[]; all: Instruction[] } {
  const all: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!buf && (line === '' || line.startsWith('#'))) return;
    if (buf && line.startsWith('#')) return;
    if (!buf) start = i + 1;
    if (line.endsWith('\\')) { buf += `${line.slice(0, -1)} `; return; }
    buf += line;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(buf)!;
    all.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = '';
  });
  assert.equal(buf, '', 'the Dockerfile ends inside a continued line');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of all) {
    if (ins.cmd === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `FROM at line ${ins.line}`);
      const from = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get((a ?? b)!) ?? '');
      stages.push({ name: m[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.cmd === 'ARG') { const [k, v] = ins.args.split('='); args.set(k!, v ?? ''); }
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { args, stages, all };
}

const dockerfile = parseDockerfile(read('deploy/docker/Dockerfile'));
const stage = (name: string) => dockerfile.stages.find((s) => s.name === name)!;
/** A stage's instructions including those of the stages it is built FROM. */
function chain(name: string): Instruction[] {
  const s = stage(name);
  assert.ok(s, `stage ${name}`);
  const parent = dockerfile.stages.find((p) => p.name === s.from);
  return [...(parent ? chain(parent.name) : []), ...s.instructions];
}
const isUid1001 = (user: string) => /^1001(:1001)?$/.test(user.trim());

/**
 * An image reference pinned to something that does not move by itself: a digest, or a tag other than `latest`.
 * `redis` and `minio/minio:latest` are not; `redis:7.4.6-bookworm` and `x@sha256:…` are.
 */
function isPinned(ref: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(ref)) return true;
  const tag = ref.slice(ref.lastIndexOf('/') + 1).split(':')[1];
  return tag !== undefined && tag !== '' && tag !== 'latest';
}

/** Every `image:` value anywhere in a parsed YAML document. */
function imagesIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(imagesIn);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value as Obj).flatMap(([k, v]) => (k === 'image' && typeof v === 'string' ? [v] : imagesIn(v)));
}

describe('deploy/docker/Dockerfile', () => {
  const targets = ['api', 'worker'];

  it('builds every image on node:24.x.y-bookworm-slim — Node 24 LTS as engines says, the release the tests run on — in stages that exist', () => {
    const names = new Set(dockerfile.stages.map((s) => s.name));
    // Pinned to the release of the `node` devDependency (the Node npm test runs on), so the image runs what was tested.
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version?: string }> };
    const tested = lock.packages['node_modules/node']?.version;
    assert.match(tested ?? '', /^24\.\d+\.\d+$/, 'the node devDependency is a Node 24 release');
    for (const s of dockerfile.stages) assert.ok(s.from === `node:${tested}-bookworm-slim` || names.has(s.from), `stage ${s.name} FROM ${s.from}`);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    assert.match(engines, /^>=24(\.|$)/, `engines.node ${engines}`);
    for (const t of targets) assert.ok(names.has(t), `target ${t}`);
    for (const ins of dockerfile.all.filter((i) => i.cmd === 'COPY')) {
      const from = /--from=(\S+)/.exec(ins.args)?.[1];
      if (from) assert.ok(names.has(from), `COPY --from=${from} at line ${ins.line}`);
    }
  });

  it('runs each image as UID 1001: USER 1001 is the last USER of each target and of the file', () => {
    for (const t of targets) {
      const users = chain(t).filter((i) => i.cmd === 'USER');
      assert.ok(users.length > 0, `${t} has a USER`);
      assert.ok(isUid1001(users.at(-1)!.args), `${t} ends as ${users.at(-1)!.args}`);
    }
    const last = dockerfile.all.filter((i) => i.cmd === 'USER').at(-1);
    assert.ok(last && isUid1001(last.args));
    // Nothing after the last USER of a target may need root (RUN would run as 1001 anyway, but installing then fails).
    for (const t of targets) {
      const ins = stage(t).instructions;
      const u = ins.map((i) => i.cmd).lastIndexOf('USER');
      assert.deepEqual(ins.slice(u).filter((i) => i.cmd === 'RUN'), [], `${t}: RUN after USER 1001`);
    }
  });

  it('fetches nothing by URL: no ADD of a URL or git repository, no curl|sh', () => {
    for (const ins of dockerfile.all) {
      if (ins.cmd === 'ADD') assert.doesNotMatch(ins.args, /(https?|ftp):\/\/|git@|\.git\b/, `ADD of a URL at line ${ins.line}`);
      if (ins.cmd === 'RUN') assert.doesNotMatch(ins.args, /(curl|wget)[^|]*\|\s*(ba)?sh/, `pipe to shell at line ${ins.line}`);
    }
  });

  it('has a HEALTHCHECK, an exec-form CMD and tini as PID 1 in every target', () => {
    for (const t of targets) {
      const ins = chain(t);
      const hc = ins.filter((i) => i.cmd === 'HEALTHCHECK').at(-1);
      assert.ok(hc && /CMD\s+\[/.test(hc.args) && !/^NONE/i.test(hc.args), `${t} HEALTHCHECK`);
      const cmd = ins.filter((i) => i.cmd === 'CMD').at(-1)!;
      const argv = JSON.parse(cmd.args) as string[];
      // Plain node on the build's JavaScript: no loader (tsx is not in the image), a file the build emits from src/.
      assert.equal(argv.length, 2, `${t} CMD ${cmd.args}`);
      assert.equal(argv[0], 'node');
      assert.match(argv[1]!, /^dist\/src\/.+\.js$/, `${t} runs ${argv[1]}`);
      assert.ok(existsSync(join(ROOT, argv[1]!.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), `${t} runs ${argv[1]}, built from a source that exists`);
      const entry = JSON.parse(ins.filter((i) => i.cmd === 'ENTRYPOINT').at(-1)!.args) as string[];
      assert.match(entry[0]!, /tini$/);
    }
  });

  it('installs production dependencies only, skips the postinstall apt-get, cleans apt lists', () => {
    const deps = chain('worker').concat(stage('deps').instructions);
    const npmCi = deps.find((i) => i.cmd === 'RUN' && /npm ci/.test(i.args));
    assert.ok(npmCi && /--omit=dev/.test(npmCi.args));
    for (const s of ['deps', 'build']) {
      const ins = stage(s).instructions;
      const ci = ins.findIndex((i) => i.cmd === 'RUN' && /npm ci/.test(i.args));
      assert.ok(ci >= 0, `${s} runs npm ci`);
      assert.ok(ins.slice(0, ci).some((e) => e.cmd === 'ENV' && /SRI_SKIP_SYSTEM_DEPS=1/.test(e.args)), `${s}: SRI_SKIP_SYSTEM_DEPS=1 before npm ci`);
    }
    for (const ins of dockerfile.all.filter((i) => i.cmd === 'RUN' && /apt-get install/.test(i.args))) {
      assert.match(ins.args, /--no-install-recommends/);
      assert.match(ins.args, /rm -rf \/var\/lib\/apt\/lists/);
    }
    // The images run dist/: what only builds or runs the sources is a dev dependency, so --omit=dev leaves it out.
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ['tsx', 'esbuild', 'typescript', 'node']) {
      assert.ok(!pkg.dependencies[dev] && pkg.devDependencies[dev], `${dev} in devDependencies only`);
    }
  });

  it('compiles in a build stage and copies only dist/ from it: no sources, tsx or esbuild in the runtime images', () => {
    const build = stage('build').instructions;
    assert.ok(build.some((i) => i.cmd === 'RUN' && /^npm run build$/.test(i.args.trim())), 'the build stage runs npm run build');
    for (const t of targets) {
      const copies = chain(t).filter((i) => i.cmd === 'COPY');
      const fromBuild = copies.filter((i) => /--from=build\b/.test(i.args));
      assert.deepEqual(fromBuild.map((i) => i.args.replace(/--from=build\s+/, '')), ['/build/dist ./dist'], `${t} takes dist/ alone from the build stage`);
      for (const c of copies.filter((i) => !/--from=/.test(i.args))) {
        assert.doesNotMatch(c.args, /^(src|scripts|migrations|tsconfig)/, `${t} copies ${c.args}: sources do not enter the image`);
      }
    }
  });

  it('gives the worker the system Chromium (CHROMIUM_PATH) and no browser to the API', () => {
    const worker = chain('worker');
    assert.ok(worker.some((i) => i.cmd === 'RUN' && /apt-get install[^&]*\bchromium\b/.test(i.args)));
    assert.ok(worker.some((i) => i.cmd === 'ENV' && /CHROMIUM_PATH=\/usr\/lib\/chromium\/chromium/.test(i.args)));
    assert.ok(!chain('api').some((i) => /chromium/.test(i.args)));
  });

  it('gives the worker bubblewrap (script sandbox) and a state directory of UID 1001; the API neither', () => {
    const install = chain('worker').find((i) => i.cmd === 'RUN' && /apt-get install/.test(i.args) && /\bchromium\b/.test(i.args))!;
    assert.match(install.args, /apt-get install[^&]*\bbubblewrap\b/);
    assert.match(install.args, /install -d -o 1001 -g 1001 -m 0700 \/var\/lib\/sri/, 'WORKER_CREDENTIALS_FILE\'s directory, writable by the worker only');
    assert.ok(!chain('api').some((i) => /bubblewrap|\/var\/lib\/sri/.test(i.args)));
    // No setuid helper: bubblewrap runs unprivileged (user namespaces), as UID 1001 like Chromium.
    assert.ok(!dockerfile.all.some((i) => i.cmd === 'RUN' && /chmod\s+[ugo]*\+?[0-7]*s|chmod\s+[2467][0-7]{3}\b/.test(i.args)), 'no setuid/setgid bit set');
  });

  it('checks the worker\'s health over HTTP (healthcheck.mjs worker: GET /healthz), not through Redis', () => {
    const hc = chain('worker').filter((i) => i.cmd === 'HEALTHCHECK').at(-1)!;
    assert.deepEqual(JSON.parse(hc.args.slice(hc.args.indexOf('CMD') + 3).trim()), ['node', 'deploy/docker/healthcheck.mjs', 'worker']);
    assert.ok(chain('worker').some((i) => i.cmd === 'ENV' && /WORKER_HTTP_PORT=9464/.test(i.args)));
    assert.doesNotMatch(read('deploy/docker/healthcheck.mjs'), /ioredis|heartbeat/i);
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', '.git', '.data', '.env']) assert.ok(ignore.includes(p), `.dockerignore has ${p}`);
    for (const ins of dockerfile.all.filter((i) => i.cmd === 'COPY' && !/--from=/.test(i.args))) {
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `COPY ${src} at line ${ins.line}`);
        assert.ok(!ignore.some((g) => src === g || src.startsWith(`${g}/`)), `COPY ${src} is excluded by .dockerignore`);
      }
    }
  });
});

// ── docker-compose.yml ───────────────────────────────────────────────────────────────────────────────────────────

describe('deploy/docker/docker-compose.yml', () => {
  const compose = parse(read('deploy/docker/docker-compose.yml'), { merge: true }) as Obj;
  const services = compose['services'] as Obj;
  const nets = (svc: string) => (services[svc]['networks'] as string[]);
  const envOf = (svc: string) => Object.keys(services[svc]['environment'] ?? {});

  const workerServices = ['worker', 'worker-enrolled'];
  const redisUserOf = (svc: string) => /^rediss?:\/\/([^:@/]+):[^@]+@/.exec(String(services[svc]['environment']['REDIS_URL']))?.[1];

  it('pins every image to a tag or digest (no :latest, no tagless image), none from a repository that is gone', () => {
    const images = Object.entries(services).map(([name, svc]) => [name, String((svc as Obj)['image'] ?? '')] as const);
    for (const [name, image] of images) assert.ok(isPinned(image), `${name}: image ${image || '(none)'} is not pinned`);
    // Docker Hub deleted minio/minio (and minio/mc) in September 2026: such a reference no longer pulls anywhere.
    for (const [name, image] of images) assert.doesNotMatch(image, /^(docker\.io\/)?minio\/(minio|mc)(:|@|$)/, `${name}: ${image}`);
    assert.ok(isPinned(dockerfile.stages[0]!.from), `the Dockerfile's base ${dockerfile.stages[0]!.from}`);
    for (const bad of ['redis', 'minio/minio:latest', 'x:', 'localhost:5000/img']) assert.ok(!isPinned(bad), bad);
    for (const good of ['redis:7.4.6-bookworm', 'localhost:5000/img:1.0', `img@sha256:${'a'.repeat(64)}`]) assert.ok(isPinned(good), good);
  });

  it('has redis (appendonly, appendfsync always), minio, postgres, api, worker and the enrolled worker', () => {
    assert.deepEqual(Object.keys(services).sort(), ['api', 'minio', 'postgres', 'redis', 'worker', 'worker-enrolled']);
    const cmd = [services['redis']['command']].flat().join(' ');
    assert.match(cmd, /--appendonly yes/);
    assert.match(cmd, /--appendfsync always/);
  });

  it('runs Redis with the ACL file of deploy/redis, rendered from the passwords at start; no requirepass', () => {
    const redis = services['redis'] as Obj;
    const cmd = [redis['command']].flat().join(' ');
    assert.match(cmd, /sh \/etc\/sri\/redis\/render-users-acl\.sh > \/data\/users\.acl\.new && mv \/data\/users\.acl\.new \/data\/users\.acl/);
    assert.match(cmd, /exec redis-server --aclfile \/data\/users\.acl /);
    assert.match(cmd, /SRI_ACL_KEEP_FROM=\/data\/users\.acl/, 'enrolled workers\' users (ACL SAVE) survive a restart');
    assert.doesNotMatch(JSON.stringify(redis), /requirepass|[{$]REDIS_PASSWORD\b/, "no shared password of the default user");
    assert.ok((redis['volumes'] as string[]).includes('../redis:/etc/sri/redis:ro'), 'deploy/redis mounted read-only');
    for (const u of ['ADMIN', 'API', 'WORKER', 'ENROL']) {
      assert.match(String(redis['environment'][`SRI_${u}_REDIS_PASSWORD`]), new RegExp(`^\\$\\{SRI_${u}_REDIS_PASSWORD:\\?`), `SRI_${u}_REDIS_PASSWORD required`);
    }
    assert.match(String(redis['healthcheck']['test']), /--user sri-admin/, 'the health check logs in (the default user is off)');
  });

  it('gives each process its own Redis user: the API sri-api, workers sri-worker, the enrolling worker sri-enrol', () => {
    assert.equal(redisUserOf('api'), 'sri-api');
    assert.equal(redisUserOf('worker'), 'sri-worker');
    assert.equal(redisUserOf('worker-enrolled'), 'sri-enrol');
    const acl = read('deploy/redis/users.acl');
    for (const u of ['sri-api', 'sri-worker', 'sri-enrol']) assert.match(acl, new RegExp(`^user ${u} on `, 'm'), `${u} in users.acl`);
  });

  it('keys: SECRETS_KEYS for the API alone, TRANSPORT_KEYS for the API and every worker; workers require signed jobs', () => {
    assert.match(String(services['api']['environment']['SECRETS_KEYS']), /^\$\{SECRETS_KEYS:\?/);
    assert.match(String(services['api']['environment']['TRANSPORT_KEYS']), /^\$\{TRANSPORT_KEYS:\?/);
    for (const w of workerServices) {
      const env = services[w]['environment'] as Obj;
      assert.equal(env['SECRETS_KEYS'], undefined, `${w} holds no SECRETS_KEYS`);
      assert.equal(env['OPERATOR_TOKEN'], undefined, `${w} holds no OPERATOR_TOKEN`);
      assert.match(String(env['TRANSPORT_KEYS']), /^\$\{TRANSPORT_KEYS:\?/, `${w} TRANSPORT_KEYS`);
      assert.equal(env['REQUIRE_JOB_SIGNATURE'], 'true', `${w} REQUIRE_JOB_SIGNATURE`);
    }
    for (const svc of ['redis', 'minio', 'postgres']) assert.doesNotMatch(JSON.stringify(services[svc]), /SECRETS_KEYS|TRANSPORT_KEYS/);
  });

  it('enrols one worker with a one-time token (profile enrolment) and keeps its credentials on a volume of its own', () => {
    const e = services['worker-enrolled'] as Obj;
    assert.deepEqual(e['profiles'], ['enrolment'], 'not started by default: the fleet worker needs no token');
    assert.match(String(e['environment']['WORKER_ENROLMENT_TOKEN']), /^\$\{WORKER_ENROLMENT_TOKEN/);
    assert.equal(e['environment']['WORKER_CREDENTIALS_FILE'], '/var/lib/sri/worker-credentials.json');
    assert.deepEqual(e['volumes'], ['worker-enrolled-state:/var/lib/sri']);
    assert.ok('worker-enrolled-state' in compose['volumes']);
    assert.equal(services['worker']['environment']['WORKER_ENROLMENT_TOKEN'], undefined, 'one token enrols one worker: not on the scaled service');
  });

  it('probes workers over HTTP (healthcheck.mjs worker-ready: GET /readyz on WORKER_HTTP_PORT), not through Redis', () => {
    for (const w of workerServices) {
      const hc = services[w]['healthcheck'] as Obj;
      assert.deepEqual(hc['test'], ['CMD', 'node', 'deploy/docker/healthcheck.mjs', 'worker-ready'], w);
      assert.equal(services[w]['environment']['WORKER_HTTP_PORT'], '9464');
    }
  });

  for (const svc of ['api', 'worker', 'worker-enrolled']) {
    it(`runs ${svc} as 1001, read-only, tmpfs /tmp, no capabilities, no-new-privileges`, () => {
      const s = services[svc] as Obj;
      assert.ok(isUid1001(String(s['user'])));
      assert.equal(s['read_only'], true);
      assert.deepEqual(s['cap_drop'], ['ALL']);
      assert.equal(s['cap_add'], undefined);
      assert.equal(s['privileged'], undefined);
      assert.ok((s['security_opt'] as string[]).some((o) => /^no-new-privileges(:true)?$/.test(o)));
      assert.ok((s['tmpfs'] as string[]).some((t) => t === '/tmp' || t.startsWith('/tmp:')));
      assert.equal(s['build']['dockerfile'], 'deploy/docker/Dockerfile');
      assert.ok(dockerfile.stages.some((st) => st.name === s['build']['target']), `target ${s['build']['target']}`);
    });
  }

  it('puts workers on an internal network that holds only Redis and MinIO', () => {
    const workerNets = nets('worker');
    assert.ok(workerNets.length > 0);
    for (const n of workerNets) {
      assert.equal(compose['networks'][n]?.['internal'], true, `${n} is internal (no route off the host)`);
      const members = Object.keys(services).filter((s) => nets(s).includes(n)).sort();
      assert.deepEqual(members, ['minio', 'redis', 'worker', 'worker-enrolled'], `members of ${n}`);
    }
    for (const w of workerServices) {
      assert.deepEqual(nets(w), workerNets, `${w} on the workers' networks only`);
      assert.equal(services[w]['ports'], undefined, 'a worker publishes nothing');
    }
  });

  it('puts the API with PostgreSQL on a network no worker is on', () => {
    const shared = nets('api').filter((n) => nets('postgres').includes(n));
    assert.ok(shared.length > 0);
    for (const n of shared) for (const w of workerServices) assert.ok(!nets(w).includes(n));
    for (const n of nets('postgres')) assert.equal(compose['networks'][n]?.['internal'], true, 'postgres is not reachable from outside');
  });

  it('gives the worker no database or API settings, and each process only settings its table knows', () => {
    for (const w of workerServices) {
      assert.deepEqual(envOf(w).filter(forbiddenForWorker), []);
      assert.deepEqual(envOf(w).filter((e) => !workerEnvNames.has(e)), [], `unknown ${w} variables`);
      assert.doesNotMatch(JSON.stringify(services[w]), /postgres/i);
    }
    assert.deepEqual(envOf('api').filter((e) => !apiEnvNames.has(e)), [], 'unknown API variables');
  });
});

// ── Kubernetes ───────────────────────────────────────────────────────────────────────────────────────────────────

describe('deploy/k8s', () => {
  const files = readdirSync(join(ROOT, 'deploy/k8s')).filter((f) => /\.ya?ml$/.test(f)).sort();
  const docs: Obj[] = files.flatMap((f) => parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => {
    assert.deepEqual(d.errors, [], `${f} parses`);
    return d.toJS() as Obj;
  })).filter(Boolean);
  const byKind = (kind: string) => docs.filter((d) => d['kind'] === kind);
  const deployment = (name: string) => byKind('Deployment').find((d) => d['metadata']['name'] === name)!;
  const workerLabels = () => deployment('sri-worker')['spec']['template']['metadata']['labels'] as Obj;

  it('parses every file; every object has apiVersion, kind, a name and the sri namespace', () => {
    assert.ok(files.length >= 4, files.join(', '));
    for (const d of docs) {
      assert.ok(d['apiVersion'] && d['kind'] && d['metadata']?.['name'], JSON.stringify(d).slice(0, 80));
      if (d['kind'] !== 'Namespace') assert.equal(d['metadata']['namespace'], 'sri', `${d['kind']}/${d['metadata']['name']}`);
    }
    const ns = byKind('Namespace')[0]!;
    assert.equal(ns['metadata']['labels']['pod-security.kubernetes.io/enforce'], 'restricted');
  });

  for (const name of ['sri-api', 'sri-worker']) {
    it(`${name}: non-root 1001, read-only root, no escalation, drop ALL, RuntimeDefault seccomp, limits, emptyDir /tmp`, () => {
      const d = deployment(name);
      assert.ok(d, name);
      const pod = d['spec']['template']['spec'] as Obj;
      assert.equal(pod['automountServiceAccountToken'], false);
      assert.equal(pod['hostNetwork'] ?? false, false);
      assert.equal(pod['securityContext']['runAsNonRoot'], true);
      assert.equal(pod['securityContext']['seccompProfile']['type'], 'RuntimeDefault');
      for (const c of pod['containers'] as Obj[]) {
        const sc = c['securityContext'] as Obj;
        assert.equal(sc['runAsUser'] ?? pod['securityContext']['runAsUser'], 1001);
        assert.equal(sc['runAsNonRoot'] ?? pod['securityContext']['runAsNonRoot'], true);
        assert.equal(sc['readOnlyRootFilesystem'], true);
        assert.equal(sc['allowPrivilegeEscalation'], false);
        assert.equal(sc['privileged'] ?? false, false);
        assert.deepEqual(sc['capabilities']['drop'], ['ALL']);
        assert.equal(sc['capabilities']['add'], undefined);
        assert.equal((sc['seccompProfile'] ?? pod['securityContext']['seccompProfile'])['type'], 'RuntimeDefault');
        for (const k of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(c['resources'][k][r], `${c['name']} ${k}.${r}`);
        const tmp = (c['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === '/tmp');
        assert.ok(tmp, `${c['name']} mounts /tmp`);
        const vol = (pod['volumes'] as Obj[]).find((v) => v['name'] === tmp['name'])!;
        assert.ok(vol['emptyDir'], '/tmp is an emptyDir');
      }
    });
  }

  it('the worker holds no database or API settings and only variables its table knows', () => {
    const pod = deployment('sri-worker')['spec']['template']['spec'] as Obj;
    for (const c of pod['containers'] as Obj[]) {
      const names = (c['env'] as Obj[]).map((e) => e['name'] as string);
      assert.deepEqual(names.filter(forbiddenForWorker), []);
      assert.deepEqual(names.filter((n) => !workerEnvNames.has(n)), [], 'unknown worker variables');
      for (const from of (c['envFrom'] ?? []) as Obj[]) assert.doesNotMatch(JSON.stringify(from), /api|postgres|database/i);
    }
    const secrets = (pod['volumes'] as Obj[]).filter((v) => v['secret']).map((v) => v['secret']['secretName'] as string);
    assert.deepEqual(secrets.filter((s) => /api|postgres|database/i.test(s)), []);
  });

  it('the worker: HTTP probes on WORKER_HTTP_PORT (startup and liveness /healthz, readiness /readyz), bound for the kubelet; no exec probe', () => {
    const c = (deployment('sri-worker')['spec']['template']['spec']['containers'] as Obj[])[0]!;
    const env = Object.fromEntries((c['env'] as Obj[]).map((e) => [e['name'], e['value'] ?? e['valueFrom']]));
    const port = (c['ports'] as Obj[]).find((p) => p['name'] === 'http')!;
    assert.equal(String(port['containerPort']), env['WORKER_HTTP_PORT']);
    assert.equal(env['WORKER_HTTP_HOST'], '0.0.0.0', 'the kubelet probes the pod\'s address, not its loopback');
    const probes = Object.fromEntries(['startupProbe', 'livenessProbe', 'readinessProbe'].map((k) => [k, c[k] as Obj]));
    assert.deepEqual(Object.values(probes).map((p) => [p['httpGet']?.['path'], p['httpGet']?.['port'], p['exec']]),
      [['/healthz', 'http', undefined], ['/healthz', 'http', undefined], ['/readyz', 'http', undefined]]);
    assert.doesNotMatch(JSON.stringify(deployment('sri-worker')), /healthcheck\.mjs/);
  });

  it('keys and identities: SECRETS_KEYS for the API alone, TRANSPORT_KEYS for both, signed jobs required, an optional enrolment token', () => {
    const envOfDeployment = (name: string) => Object.fromEntries(((deployment(name)['spec']['template']['spec']['containers'] as Obj[])[0]!['env'] as Obj[])
      .map((e) => [e['name'], e['value'] ?? e['valueFrom']]));
    const api = envOfDeployment('sri-api');
    const worker = envOfDeployment('sri-worker');
    assert.deepEqual(api['SECRETS_KEYS'], { secretKeyRef: { name: 'sri-secrets-keys', key: 'SECRETS_KEYS' } });
    assert.equal(worker['SECRETS_KEYS'], undefined);
    assert.doesNotMatch(JSON.stringify(deployment('sri-worker')), /sri-secrets-keys|sri-operator|OPERATOR_TOKEN/);
    assert.deepEqual(api['TRANSPORT_KEYS'], worker['TRANSPORT_KEYS']);
    assert.deepEqual(worker['TRANSPORT_KEYS'], { secretKeyRef: { name: 'sri-transport-keys', key: 'TRANSPORT_KEYS' } });
    assert.equal(worker['REQUIRE_JOB_SIGNATURE'], 'true');
    assert.deepEqual(worker['WORKER_ENROLMENT_TOKEN'], { secretKeyRef: { name: 'sri-worker-enrolment', key: 'token', optional: true } });
    const pod = deployment('sri-worker')['spec']['template']['spec'] as Obj;
    const mount = ((pod['containers'] as Obj[])[0]!['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === '/var/lib/sri')!;
    assert.equal(dirname(worker['WORKER_CREDENTIALS_FILE'] as string), '/var/lib/sri');
    assert.ok((pod['volumes'] as Obj[]).find((v) => v['name'] === mount['name'])!['emptyDir'], 'credentials on an emptyDir: they outlive container restarts, not the pod');
  });

  it('pins every container image to a tag or digest (no :latest, no tagless image)', () => {
    const images = imagesIn(docs);
    assert.ok(images.length >= 2, images.join(', '));
    for (const image of images) assert.ok(isPinned(image), `image ${image} is not pinned`);
  });

  it('the API Service selects the API pods', () => {
    const svc = byKind('Service').find((s) => s['metadata']['name'] === 'sri-api')!;
    const labels = deployment('sri-api')['spec']['template']['metadata']['labels'] as Obj;
    for (const [k, v] of Object.entries(svc['spec']['selector'] as Obj)) assert.equal(labels[k], v);
  });

  it('NetworkPolicy: worker ingress none, egress only Redis, S3 and DNS', () => {
    const policies = byKind('NetworkPolicy').filter((p) =>
      Object.entries(p['spec']['podSelector']['matchLabels'] as Obj).every(([k, v]) => workerLabels()[k] === v));
    assert.equal(policies.length, 1);
    const spec = policies[0]!['spec'] as Obj;
    assert.deepEqual([...spec['policyTypes']].sort(), ['Egress', 'Ingress']);
    assert.deepEqual(spec['ingress'] ?? [], []);
    const allowed = new Set<string>();
    for (const rule of spec['egress'] as Obj[]) {
      assert.ok(Array.isArray(rule['to']) && rule['to'].length > 0, 'no egress rule open to every destination');
      assert.ok(Array.isArray(rule['ports']) && rule['ports'].length > 0, 'no egress rule open to every port');
      for (const to of rule['to'] as Obj[]) {
        assert.equal(to['ipBlock'], undefined, 'no ipBlock (0.0.0.0/0 would be the internet)');
        const target = to['podSelector']?.['matchLabels']?.['app.kubernetes.io/name'] ?? to['podSelector']?.['matchLabels']?.['k8s-app'];
        for (const p of rule['ports'] as Obj[]) allowed.add(`${target}:${p['protocol']}/${p['port']}`);
      }
    }
    assert.deepEqual([...allowed].sort(), ['kube-dns:TCP/53', 'kube-dns:UDP/53', 'minio:TCP/9000', 'redis:TCP/6379']);
  });

  it('autoscaling: a KEDA ScaledObject scales the worker Deployment on the length of Redis job lists', () => {
    const so = byKind('ScaledObject')[0]!;
    assert.equal(so['spec']['scaleTargetRef']['name'], 'sri-worker');
    assert.ok(so['spec']['minReplicaCount'] >= 1 && so['spec']['maxReplicaCount'] > so['spec']['minReplicaCount']);
    const triggers = so['spec']['triggers'] as Obj[];
    assert.ok(triggers.length > 0);
    for (const t of triggers) {
      assert.equal(t['type'], 'redis');
      const list = (t['metadata']['listName'] as string).replace('ORG_ID', 'x');
      assert.ok([keys.orgJobs('x'), keys.orgReadyNormal('x'), keys.orgReadyHigh('x')].includes(list), `${list} is a job list`);
      const auth = byKind('TriggerAuthentication').find((a) => a['metadata']['name'] === t['authenticationRef']['name']);
      assert.ok(auth, 'its TriggerAuthentication exists');
    }
  });
});

// ── healthcheck.mjs ──────────────────────────────────────────────────────────────────────────────────────────────

describe('deploy/docker/healthcheck.mjs', () => {
  let http: Server;
  let httpPort = 0;
  const status: Record<string, number> = { '/health': 200, '/healthz': 200, '/readyz': 200 };

  before(async () => {
    http = createServer((req, res) => { res.statusCode = status[req.url ?? ''] ?? 404; res.end(); });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    httpPort = (http.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((r) => http.close(r));
  });

  const check = (args: string[], env: Record<string, string>) => new Promise<number | null>((resolveExit) => {
    const child = spawn(process.execPath, [join(ROOT, 'deploy/docker/healthcheck.mjs'), ...args],
      { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: 'ignore', cwd: ROOT });
    child.once('exit', (code) => resolveExit(code));
  });

  it('worker: GET /healthz on WORKER_HTTP_PORT; worker-ready: GET /readyz — no Redis, no credentials needed', async () => {
    const env = { WORKER_HTTP_PORT: String(httpPort), WORKER_HTTP_HOST: '0.0.0.0' };
    assert.equal(await check(['worker'], env), 0);
    assert.equal(await check(['worker-ready'], env), 0);
    status['/readyz'] = 503; // draining, Redis away, Chromium down
    assert.equal(await check(['worker-ready'], env), 1);
    assert.equal(await check(['worker'], env), 0, 'alive while not ready');
    status['/healthz'] = 503; // event loop stuck
    assert.equal(await check(['worker'], env), 1);
    assert.equal(await check(['worker'], { WORKER_HTTP_PORT: 'off' }), 1, 'no probe port');
    assert.equal(await check(['worker'], { WORKER_HTTP_PORT: String(httpPort + 1 === 65536 ? 1 : httpPort + 1) }), 1, 'nothing listening');
  });

  it('api: healthy when /health answers 2xx', async () => {
    assert.equal(await check(['api'], { PORT: String(httpPort) }), 0);
    status['/health'] = 503;
    assert.equal(await check(['api'], { PORT: String(httpPort) }), 1);
  });
});
