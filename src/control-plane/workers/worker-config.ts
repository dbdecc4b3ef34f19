/**
 * The workers' live configuration, the control plane's side (src/shared/live-config.ts, docs/configuration.md "Live
 * configuration"): read it, and replace it whole with a version check — one atomic script
 * (./lua/setWorkerConfig-2.lua) that writes the document, appends the audit entry and announces the version to
 * the workers, or does none of it when someone wrote in between (WORKER_CONFIG_CONFLICT).
 * The caller validates the configuration (LiveConfig) before it gets here; a document is never stored half.
 */
import type { Redis } from 'ioredis';
import { SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import {
  EMPTY_LIVE_CONFIG, LIVE_CONFIG_MAX_BYTES, parseLiveConfigDocument, type LiveConfig, type LiveConfigDocument,
} from '../../shared/live-config.ts';
import { registerScripts, type LuaCall, type ScriptArea } from '../../shared/lua/scripts.ts';

/** Result codes of setWorkerConfig-2.lua: one table, given to the script as its prelude. */
export const WorkerConfigCode = Object.freeze({ Ok: 1, Conflict: 2 });

export const WORKER_CONFIG_SCRIPTS: ScriptArea = Object.freeze({
  area: 'workercfg', version: 1, dir: new URL('./lua/', import.meta.url),
  prelude: () => `local CODE = { ${Object.entries(WorkerConfigCode).map(([k, v]) => `${k} = ${v}`).join(', ')} }\n`,
});

/** Audit entries kept in keys.workerConfigHistory. */
export const WORKER_CONFIG_HISTORY_MAX = 100;

export interface WorkerConfigAudit {
  readonly version: number;
  readonly at: string;
  readonly by: string;
  /** Dotted paths of the settings that changed (`global.maxJobs`, `providers.sri.retry.maxAttempts`). */
  readonly changed: string[];
}

export interface WorkerConfigView {
  /** 0: never written. */
  readonly version: number;
  readonly config: LiveConfig;
  readonly updatedAt: string | null;
  readonly updatedBy: string | null;
  /**
   * Set when the stored document does not validate (written by hand): workers ignore it and keep their last good
   * configuration; `config` is then empty and a PUT with `version` replaces the document.
   */
  readonly problem?: string;
}

/** Dotted paths of the leaves that differ between two configurations. */
export function changedPaths(before: unknown, after: unknown, prefix = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(before) || isObject(after)) {
    const b = isObject(before) ? before : {};
    const a = isObject(after) ? after : {};
    const names = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
    return names.flatMap((n) => changedPaths(b[n], a[n], prefix ? `${prefix}.${n}` : n));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix || '(root)'];
}

export class WorkerConfigStore {
  private readonly lua: Readonly<Record<string, LuaCall>>;

  constructor(private readonly redis: Redis) {
    this.lua = registerScripts(redis, WORKER_CONFIG_SCRIPTS);
  }

  async read(): Promise<WorkerConfigView> {
    const read = parseLiveConfigDocument(await this.redis.get(keys.workerConfig));
    if (read.state === 'absent') return { version: 0, config: EMPTY_LIVE_CONFIG, updatedAt: null, updatedBy: null };
    if (read.state === 'invalid') return { version: read.version, config: EMPTY_LIVE_CONFIG, updatedAt: null, updatedBy: null, problem: read.problem };
    const d = read.document;
    return { version: d.version, config: d.config, updatedAt: d.updatedAt, updatedBy: d.updatedBy };
  }

  /** The newest audit entries first. */
  async history(limit = 20): Promise<WorkerConfigAudit[]> {
    const raw = await this.redis.lrange(keys.workerConfigHistory, 0, limit - 1);
    return raw.flatMap((r) => {
      try {
        return [JSON.parse(r) as WorkerConfigAudit];
      } catch {
        return [];
      }
    });
  }

  /**
   * Replaces the configuration when the stored version is still `expectedVersion`; throws WORKER_CONFIG_CONFLICT
   * (details: currentVersion) otherwise. `config` must have passed LiveConfig.
   */
  async write(config: LiveConfig, expectedVersion: number, by: string, now = new Date()): Promise<{ document: LiveConfigDocument; audit: WorkerConfigAudit }> {
    const before = await this.read();
    const version = expectedVersion + 1;
    const document: LiveConfigDocument = { version, config, updatedAt: now.toISOString(), updatedBy: by };
    const text = JSON.stringify(document);
    if (Buffer.byteLength(text, 'utf8') > LIVE_CONFIG_MAX_BYTES) {
      throw new SriError('VALIDATION_FAILED', `config: the document is larger than ${LIVE_CONFIG_MAX_BYTES} bytes; set fewer provider overrides.`, { details: [{ field: 'config', message: `larger than ${LIVE_CONFIG_MAX_BYTES} bytes` }] });
    }
    // `before` is only for the audit's list of changes: the script's version check is what guards the write.
    const audit: WorkerConfigAudit = { version, at: document.updatedAt, by, changed: before.version === expectedVersion ? changedPaths(before.config, config) : ['(all)'] };
    const [code, current] = await this.script('setWorkerConfig')(
      [keys.workerConfig, keys.workerConfigHistory],
      [expectedVersion, text, JSON.stringify(audit), WORKER_CONFIG_HISTORY_MAX, keys.workerConfigChanged, JSON.stringify({ version })],
    ) as [number, number];
    if (code === WorkerConfigCode.Conflict) {
      throw new SriError('WORKER_CONFIG_CONFLICT', `The workers' live configuration is at version ${current}, not ${expectedVersion}: someone changed it since you read it. Read it again (GET /api/operator/worker-config, sri config get), apply your change and send it with version ${current}.`, { details: { currentVersion: current, expectedVersion } });
    }
    if (code !== WorkerConfigCode.Ok) throw new Error(`setWorkerConfig returned unknown code ${String(code)}`);
    return { document, audit };
  }

  private script(name: string): LuaCall {
    const fn = this.lua[name];
    if (!fn) throw new Error(`worker-config script ${name} is not loaded`);
    return fn;
  }
}
