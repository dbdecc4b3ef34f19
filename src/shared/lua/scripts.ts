/**
 * The one Lua loader of the platform: every script, whatever plane runs it (the queue's transitions in
 * src/shared/queue/lua/, the metrics read in src/shared/metrics/lua/, the login lockout and the run limits of the
 * control plane), is a file `<verb><Noun>-<numKeys>.lua` in a folder of its own area, read once per process,
 * `--@include <file>` lines resolved from the folder's `include/`, and registered on each connection with ioredis
 * `defineCommand` under a versioned name (`sri_queue_v6_takeJob`) when its owner connects.
 *
 * Every key a script touches arrives in KEYS, so the scripts run on Redis Cluster as on one Redis; `numKeys` in the
 * file name is how many. A script that takes more — one group of keys per organisation, say — says so in its header
 * with a `KEYS[n…]` line (n = numKeys + 1) and is called with numKeys keys or more. The caller passes keys and
 * arguments apart (`call(keys, args)`), and a call with the wrong number of keys throws before reaching Redis.
 *
 * defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis (or a Cluster node that
 * never saw the script) needs nothing from us; EVALSHA names the script by its content, so two releases with
 * different scripts share one Redis during a rolling update, each calling its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** A call of one script: its keys (all in one slot on Cluster) and its arguments. */
export type LuaCall = (keys: readonly string[], args?: readonly (string | number)[]) => Promise<unknown>;

export interface LuaScript {
  /** `takeJob` for takeJob-9.lua. */
  readonly name: string;
  readonly file: string;
  /** The keys the file name declares: exactly these, or at least these when `variableKeys`. */
  readonly numberOfKeys: number;
  /** The header documents `KEYS[numberOfKeys + 1…]`: callers may pass more keys. */
  readonly variableKeys: boolean;
  /** The text sent to Redis, includes resolved. */
  readonly lua: string;
}

export interface ScriptArea {
  /** Short name in the command names: `queue`, `metrics`, `auth`, `api`. */
  readonly area: string;
  /** Bump when any script of the area changes behaviour (the command names change with it). */
  readonly version: number;
  /** The folder of the area's `.lua` files (`new URL('./lua/', import.meta.url)`). */
  readonly dir: URL;
  /** Lua put before every script of the area: constants generated from TypeScript, so they have one source. */
  readonly prelude?: () => string;
}

const loaded = new Map<string, readonly LuaScript[]>();

function resolveIncludes(dir: URL, text: string, seen: Set<string>): string {
  return text.replace(/^--@include ([\w.-]+\.lua)\s*$/gm, (_, file: string) => {
    if (seen.has(file)) return `-- (${file} already included)`;
    seen.add(file);
    return resolveIncludes(dir, readFileSync(new URL(`include/${file}`, dir), 'utf8'), seen);
  });
}

/** Reads and assembles every script of the area once per process; later calls return the same texts. */
export function loadScripts(area: Pick<ScriptArea, 'dir' | 'prelude'>): readonly LuaScript[] {
  const { dir } = area;
  const cached = loaded.get(dir.href);
  if (cached) return cached;
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.lua')).sort().map((file): LuaScript => {
    const m = /^([a-z][A-Za-z]+)-(\d+)\.lua$/.exec(file);
    if (!m) throw new Error(`Lua file name ${file} is not <verb><Noun>-<numKeys>.lua`);
    const text = readFileSync(new URL(file, dir), 'utf8');
    const numberOfKeys = Number(m[2]);
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(text)?.[1] ?? '';
    const variableKeys = new RegExp(`KEYS\\[${numberOfKeys + 1}…\\]`).test(header);
    if (numberOfKeys < 1 && !variableKeys) throw new Error(`${file}: a script must declare its keys (on Cluster EVALSHA is routed by them)`);
    return { name: m[1]!, file, numberOfKeys, variableKeys, lua: `${area.prelude?.() ?? ''}${resolveIncludes(dir, text, new Set())}` };
  });
  loaded.set(dir.href, scripts);
  return scripts;
}

export function commandName(area: Pick<ScriptArea, 'area' | 'version'>, name: string): string {
  return `sri_${area.area}_v${area.version}_${name}`;
}

type Defined = Record<string, ((...a: (string | number)[]) => Promise<unknown>) | undefined>;

/**
 * Registers every script of `area` on `redis` (idempotent per connection: a second owner on the same connection
 * reuses the commands) and returns a caller per script name.
 */
export function registerScripts(redis: Redis, area: ScriptArea): Readonly<Record<string, LuaCall>> {
  const calls: Record<string, LuaCall> = {};
  const defined = redis as unknown as Defined;
  for (const s of loadScripts(area)) {
    const cmd = commandName(area, s.name);
    if (typeof defined[cmd] !== 'function') {
      // Variable key counts go as the first argument (numberOfKeys left out), as EVALSHA itself takes them.
      redis.defineCommand(cmd, s.variableKeys ? { lua: s.lua } : { lua: s.lua, numberOfKeys: s.numberOfKeys });
    }
    const fn = defined[cmd]!.bind(redis);
    // At least one key always: on Cluster a script call is sent to the node of its keys.
    const badKeys = (keys: readonly string[]) => (s.variableKeys ? keys.length < Math.max(1, s.numberOfKeys) : keys.length !== s.numberOfKeys)
      ? new Error(`${s.file} takes ${s.variableKeys ? 'at least ' : ''}${Math.max(1, s.numberOfKeys)} keys, got ${keys.length}`) : undefined;
    const argv = (keys: readonly string[], args: readonly (string | number)[]) => (s.variableKeys ? [keys.length, ...keys, ...args] : [...keys, ...args]);
    calls[s.name] = (keys, args = []) => {
      const bad = badKeys(keys);
      return bad ? Promise.reject(bad) : fn(...argv(keys, args));
    };
  }
  return Object.freeze(calls);
}
