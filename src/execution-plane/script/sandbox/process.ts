/**
 * How a sandbox child is started (docs/security.md "Script sandbox"):
 *
 *   prlimit --cpu=S:S+1 --as=B -- bwrap <namespaces, read-only /usr, no /etc, no network> -- node <flags> --eval <child>
 *
 * - prlimit: CPU seconds (SIGXCPU at S) and address space (heap and buffers), inherited by everything below.
 * - bwrap: new user, PID, network, IPC, UTS and cgroup namespaces; only /usr (read-only), the node binary itself
 *   when it lives elsewhere (read-only, the file alone), an empty /tmp, /proc and a minimal /dev; no environment; all
 *   capabilities dropped; dies with the worker. No network interface but a down loopback, so no socket reaches
 *   anything — the browser's traffic stays the host's (egress proxy).
 * - node: the permission model with no grants (no file reads or writes, no child processes, no workers, no
 *   native addons), code generation from strings off, a capped heap; the child's code comes on the command line,
 *   so it needs to read no file.
 * In `process` mode the bwrap layer is missing: the worker says so when it starts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
// Types only: the module itself is required lazily, in the sources alone (it is a dev dependency).
import type * as Esbuild from 'esbuild';

export type SandboxKind = 'bwrap' | 'process';

export interface SandboxLimits {
  readonly cpuSeconds: number;
  readonly memoryMb: number;
  /** The bubblewrap executable. @default 'bwrap' (from PATH) */
  readonly bwrapPath?: string;
}

/**
 * Address space allowed beyond the heap: what V8 reserves up front plus room for buffers. Measured on Node 24.21
 * (x64): a child does not start under about heap + 1,150 MiB ("Failed to reserve virtual memory for CodeRange");
 * Node 20 started at about 700 MiB. 1.5 GiB leaves a few hundred MiB of buffers, as 1 GiB did on Node 20.
 */
const ADDRESS_SPACE_OVERHEAD_MB = 1536;

/**
 * The prebuilt bundle `npm run build` writes next to the compiled module (scripts/build.ts). Compiled code (dist/,
 * the images) reads it and has no esbuild; the sources (tsx: `sri up`, the tests) bundle child.ts when first asked.
 */
export const CHILD_BUNDLE_FILE = 'child.bundle.js';
const COMPILED = import.meta.url.endsWith('.js');
/** The node that runs the children: this worker's own, symlinks resolved (bwrap binds a real file). */
const NODE_BINARY = realpathSync(process.execPath);

let bundle: string | undefined;

/** child.ts and what it imports, as one ES module (read or built once per worker process). */
export function childBundle(): string {
  bundle ??= COMPILED ? readFileSync(new URL(`./${CHILD_BUNDLE_FILE}`, import.meta.url), 'utf8') : buildChildBundle();
  return bundle;
}

/** Bundles child.ts with esbuild (a dev dependency: loaded only here, never by compiled code). */
export function buildChildBundle(): string {
  const { buildSync } = createRequire(import.meta.url)('esbuild') as typeof Esbuild;
  const out = buildSync({
    entryPoints: [fileURLToPath(new URL('./child.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', target: 'node24', write: false, legalComments: 'none', logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}

function permissionFlag(): string {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  return major > 22 || (major === 22 && minor >= 13) ? '--permission' : '--experimental-permission';
}

/** bwrap arguments for the root filesystem: /usr read-only, and /lib, /lib64, /bin as the host has them. */
function rootFs(): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const p of ['/lib', '/lib64', '/bin', '/sbin']) {
    if (!existsSync(p)) continue;
    const st = lstatSync(p);
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(p), p);
    else args.push('--ro-bind', p, p);
  }
  // A node outside /usr — the project's own Node 24 under node_modules/node/bin (npm scripts run that one), nvm,
  // /opt — is bound as the one file, read-only, at its own path: nothing else of its directory (the project's
  // node_modules, npm's global packages) enters the sandbox. The official binary needs only libc and libstdc++
  // from /usr/lib.
  return args;
}

/**
 * The bind of a node outside /usr, after `--tmpfs /tmp` and `--proc`/`--dev`: bwrap mounts in order, so a binary
 * under /tmp (a checkout in /tmp) bound before the empty /tmp would be hidden by it.
 */
function nodeBinaryBind(): string[] {
  return NODE_BINARY.startsWith('/usr/') ? [] : ['--ro-bind', NODE_BINARY, NODE_BINARY];
}

export function childCommand(kind: SandboxKind, limits: SandboxLimits, code: string): { file: string; args: string[] } {
  const node = [
    NODE_BINARY, permissionFlag(), '--no-warnings', '--disallow-code-generation-from-strings',
    `--max-old-space-size=${limits.memoryMb}`, '--input-type=module', '--eval', code,
  ];
  const bwrap = kind === 'bwrap'
    ? [limits.bwrapPath ?? 'bwrap', '--unshare-all', '--die-with-parent', '--new-session', '--clearenv', '--cap-drop', 'ALL',
      '--uid', '65534', '--gid', '65534', '--hostname', 'sandbox',
      ...rootFs(), '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...nodeBinaryBind(), '--chdir', '/tmp', '--']
    : [];
  const rlimits = [`--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 1}`, `--as=${(limits.memoryMb + ADDRESS_SPACE_OVERHEAD_MB) * 1024 * 1024}`];
  return { file: 'prlimit', args: [...rlimits, '--', ...bwrap, ...node] };
}

/** Environment of a `process`-mode child (bwrap clears its own): nothing of the worker's. */
export const CHILD_ENV: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin' };

/** Runs a trivial child the way jobs will run: undefined when it works, else why not. */
export function probeSandbox(kind: SandboxKind, limits: SandboxLimits): string | undefined {
  const { file, args } = childCommand(kind, limits, 'process.stdout.write("ok")');
  const r = spawnSync(file, args, { env: CHILD_ENV, encoding: 'utf8', timeout: 15_000 });
  if (r.error) return `${file} could not be run: ${r.error.message}`;
  if (r.status !== 0 || r.stdout !== 'ok') {
    return `the sandbox test process failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' ').slice(0, 500)}`;
  }
  return undefined;
}
