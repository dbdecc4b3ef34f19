/**
 * Loads the queue's Lua transitions (./lua/<verb><Noun>-<numKeys>.lua) once per process, resolves their
 * `--@include <file>` lines (./lua/include/), prepends the key table `K` generated from keys.ts (so key names have
 * one source), and registers each script on a connection with ioredis `defineCommand` under a versioned name
 * (`sri_v3_takeJob`). defineCommand runs EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis (empty
 * script cache) needs nothing from us, and two releases with different scripts can share one Redis.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { keys } from '../keys.ts';

/** Bump when any script's behaviour changes; an older release keeps calling its own names. */
export const LUA_VERSION = 3;

export type LuaCall = (...args: (string | number)[]) => Promise<unknown>;

interface LoadedScript { name: string; lua: string; numberOfKeys: number }

const LUA_DIR = new URL('./lua/', import.meta.url);
let loaded: LoadedScript[] | undefined;

/**
 * `local K = {...}`: the keys of keys.ts the script uses (`K.name`), each as a Lua string or a builder function
 * with the same arguments. Only the used ones: the table is rebuilt on every call of the script.
 */
function keyTable(body: string): string {
  const lines = ['local K = {}'];
  for (const [name, value] of Object.entries(keys)) {
    if (!new RegExp(`\\bK\\.${name}\\b`).test(body)) continue;
    if (typeof value === 'string') {
      lines.push(`K.${name} = ${JSON.stringify(value)}`);
      continue;
    }
    const fn = value as (...a: string[]) => string;
    const marks = Array.from({ length: fn.length }, (_, i) => `\u0001${i}\u0001`);
    const params = marks.map((_, i) => `a${i + 1}`);
    const parts = fn(...marks).split(/\u0001(\d+)\u0001/);
    const expr = parts.map((p, i) => (i % 2 === 1 ? `a${Number(p) + 1}` : JSON.stringify(p))).filter((p) => p !== '""').join(' .. ');
    lines.push(`K.${name} = function(${params.join(', ')}) return ${expr} end`);
  }
  return lines.join('\n');
}

function resolveIncludes(text: string, seen: Set<string>): string {
  return text.replace(/^--@include ([\w.-]+\.lua)\s*$/gm, (_, file: string) => {
    if (seen.has(file)) return `-- (${file} already included)`;
    seen.add(file);
    return resolveIncludes(readFileSync(new URL(`include/${file}`, LUA_DIR), 'utf8'), seen);
  });
}

/** Reads and assembles every script once (first call); later calls return the same texts. */
export function loadScripts(): readonly LoadedScript[] {
  if (loaded) return loaded;
  loaded = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua')).sort().map((file) => {
    const m = /^([A-Za-z]+)-(\d+)\.lua$/.exec(file);
    if (!m) throw new Error(`Lua file name ${file} is not <verb><Noun>-<numKeys>.lua`);
    const body = resolveIncludes(readFileSync(new URL(file, LUA_DIR), 'utf8'), new Set());
    return { name: m[1]!, numberOfKeys: Number(m[2]), lua: `${keyTable(body)}\n${body}` };
  });
  return loaded;
}

export function commandName(name: string): string {
  return `sri_v${LUA_VERSION}_${name}`;
}

/** Registers every script on `redis` (idempotent per connection) and returns callers by script name. */
export function registerScripts(redis: Redis): Record<string, LuaCall> {
  const calls: Record<string, LuaCall> = {};
  const r = redis as unknown as Record<string, LuaCall | undefined>;
  for (const s of loadScripts()) {
    const cmd = commandName(s.name);
    if (typeof r[cmd] !== 'function') redis.defineCommand(cmd, { lua: s.lua, numberOfKeys: s.numberOfKeys });
    calls[s.name] = (r[cmd] as LuaCall).bind(redis);
  }
  return calls;
}
