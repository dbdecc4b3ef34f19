/**
 * Module bundles for jobs that name `module` (docs/modules.md): resolves the reference's range against the versions
 * published in the scripts bucket when the job is taken — so a version published a moment ago is what the next job
 * runs, with no restart — then downloads the bundle once, verifies its signature and checksums
 * (verified-script.ts verifyModuleBundle) and keeps it by exact version, the least recently used going first beyond
 * WORKER_MODULE_CACHE_MAX. A job already running holds its own VerifiedScript and finishes on it.
 *
 * The organisation check comes after verification: the manifest it reads is the signed one.
 */
import semver from 'semver';
import { SriError, isSriError } from '../../shared/errors.ts';
import { moduleAllows, moduleKeys, type ModuleManifest } from '../../shared/modules/manifest.ts';
import { parseModuleRef } from '../../shared/modules/ref.ts';
import { moduleSigningKeyring } from '../../shared/modules/signature.ts';
import { resolvePublished } from '../../shared/modules/store.ts';
import type { BlobStore } from '../../shared/s3.ts';
import type { Keyring } from '../../shared/sealed.ts';
import { boundWait } from '../job/deadline.ts';
import { verifyModuleBundle, type VerifiedScript } from './verified-script.ts';

/** Longest one S3 call of the loader may take (a listing, one file): as long as reading a script may (pipeline.ts). */
const S3_CALL_TIMEOUT_MS = 60_000;

export interface LoadedModule {
  readonly name: string;
  readonly version: string;
  readonly manifest: ModuleManifest;
  readonly script: VerifiedScript;
}

export interface ModuleLoaderOptions {
  readonly store: BlobStore;
  /** S3_SCRIPTS_BUCKET. */
  readonly bucket: string;
  /** moduleSigningKeyring (modules/signature.ts). */
  readonly keyring: Keyring;
  /** WORKER_MODULE_CACHE_MAX. */
  readonly maxEntries: number;
}

export class ModuleLoader {
  /** name@version → the verified bundle (or its download in flight, shared by the jobs that wait for it). */
  readonly #cache = new Map<string, Promise<LoadedModule>>();
  #downloads = 0;

  constructor(private readonly opts: ModuleLoaderOptions) {}

  /** Bundles downloaded and verified since start (a cached version is not downloaded again). */
  get downloads(): number {
    return this.#downloads;
  }

  /** Versions held now. */
  get cached(): string[] {
    return [...this.#cache.keys()];
  }

  /**
   * The module `ref` names, verified, for a job of `orgId`. Throws SriError MODULE_NOT_FOUND, MODULE_INTEGRITY,
   * MODULE_SIGNATURE_INVALID, MODULE_NOT_ALLOWED, or SERVICE_UNAVAILABLE (S3 unreachable: retried).
   */
  async load(ref: string, orgId: string): Promise<LoadedModule> {
    const parsed = parseModuleRef(ref);
    if ('error' in parsed) throw new SriError('INVALID_JOB', `Invalid job message: module ${parsed.error}`);
    const { name, range } = parsed;
    // An exact version needs no listing when it is held already; a range is resolved on every job (hot reload).
    const exact = semver.valid(range) === range ? range : undefined;
    const version = exact !== undefined && this.#cache.has(`${name}@${exact}`) ? exact : await this.#resolve(name, range);
    const loaded = await this.#get(name, version);
    if (!moduleAllows(loaded.manifest, orgId)) {
      throw new SriError('MODULE_NOT_ALLOWED', `Module ${name}@${version} is not allowed for organisation ${orgId}: its manifest allows ${describeAllow(loaded.manifest)}.`);
    }
    return loaded;
  }

  async #resolve(name: string, range: string): Promise<string> {
    let version: string | undefined;
    try {
      version = await boundWait(resolvePublished(this.opts.store, this.opts.bucket, name, range), S3_CALL_TIMEOUT_MS, `listing the versions of module ${name}`);
    } catch (e) {
      throw new SriError('SERVICE_UNAVAILABLE', `Could not list the versions of module ${name} in S3: ${(e as Error).message}`, { cause: e });
    }
    if (version === undefined) {
      throw new SriError('MODULE_NOT_FOUND', `Module ${name}@${range}: no published version of ${name} satisfies ${range} (bucket ${this.opts.bucket}, ${moduleKeys.versionsPrefix(name)}).`);
    }
    return version;
  }

  #get(name: string, version: string): Promise<LoadedModule> {
    const id = `${name}@${version}`;
    const held = this.#cache.get(id);
    if (held) {
      // Most recently used last: the Map's order is the eviction order.
      this.#cache.delete(id);
      this.#cache.set(id, held);
      return held;
    }
    const loading = this.#download(name, version);
    this.#cache.set(id, loading);
    // A refused or failed download is not kept: the next job tries again (the bundle may have been repaired).
    loading.catch(() => { if (this.#cache.get(id) === loading) this.#cache.delete(id); });
    while (this.#cache.size > this.opts.maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    return loading;
  }

  async #download(name: string, version: string): Promise<LoadedModule> {
    this.#downloads++;
    const read = async (file: string) => {
      try {
        return await boundWait(this.opts.store.get(this.opts.bucket, moduleKeys.file(name, version, file)), S3_CALL_TIMEOUT_MS, `reading ${moduleKeys.file(name, version, file)}`);
      } catch (e) {
        throw new SriError('SERVICE_UNAVAILABLE', `Could not read ${moduleKeys.file(name, version, file)} from S3: ${(e as Error).message}`, { cause: e });
      }
    };
    try {
      const { script, manifest } = await verifyModuleBundle(this.opts.keyring, name, version, read);
      return { name, version, manifest, script };
    } catch (e) {
      if (isSriError(e)) throw e;
      throw new SriError('MODULE_INTEGRITY', `Module ${name}@${version} refused: ${(e as Error).message}`, { cause: e });
    }
  }
}

function describeAllow(m: ModuleManifest): string {
  const parts = [
    ...(m.allow?.orgs?.length ? [`organisations ${m.allow.orgs.join(', ')}`] : []),
    ...(m.allow?.plans?.length ? [`plans ${m.allow.plans.join(', ')}`] : []),
  ];
  return parts.length ? parts.join(' and ') : 'no organisation';
}

const loaders = new WeakMap<BlobStore, ModuleLoader>();

/**
 * The worker's loader when none is passed in PipelineDeps: one per blob store, which lives exactly as long as its
 * worker, so the cache outlives jobs without the worker's start-up code knowing about modules.
 */
export function moduleLoaderOf(store: BlobStore, config: {
  readonly s3ScriptsBucket: string; readonly moduleCacheMax: number; readonly scriptSigningSecret: string; readonly moduleSigningKeys?: Keyring | undefined;
}): ModuleLoader {
  let loader = loaders.get(store);
  if (!loader) {
    loader = new ModuleLoader({ store, bucket: config.s3ScriptsBucket, keyring: moduleSigningKeyring(config), maxEntries: config.moduleCacheMax });
    loaders.set(store, loader);
  }
  return loader;
}
