/**
 * Module bundles in the scripts bucket (ARCHITECTURE.md "S3 layout": `modules/{name}/{version}/`). A version is
 * published when its signature.json exists: publish writes it last, so a worker never sees half a bundle as a
 * version (it lists only versions with a signature), and a version once published is never overwritten.
 */
import type { BlobStore } from '../s3.ts';
import { moduleKeys, ModuleManifest, resolveVersion } from './manifest.ts';
import type { SignedBundle } from './signature.ts';

const SIGNATURE_FILE = 'signature.json';

const contentTypeOf = (file: string) => (file.endsWith('.json') ? 'application/json' : file.endsWith('.js') ? 'text/javascript' : 'text/plain');

/** Stores a signed bundle; false (nothing written) when this version is already published. */
export async function storeBundle(store: BlobStore, bucket: string, bundle: SignedBundle, signal?: AbortSignal): Promise<boolean> {
  const { name, version } = bundle.manifest;
  if (await store.exists(bucket, moduleKeys.signature(name, version))) return false;
  const rest = [...bundle.objects].filter(([file]) => file !== SIGNATURE_FILE);
  await Promise.all(rest.map(([file, body]) => store.put(bucket, moduleKeys.file(name, version, file), body, contentTypeOf(file), { signal })));
  await store.put(bucket, moduleKeys.signature(name, version), bundle.objects.get(SIGNATURE_FILE)!, 'application/json', { signal });
  return true;
}

/** Published versions of every module (or of `name`), from one listing of the bucket: name → versions. */
export async function listPublished(store: BlobStore, bucket: string, name?: string): Promise<Map<string, string[]>> {
  const objects = await store.list(bucket, name === undefined ? moduleKeys.namesPrefix : moduleKeys.versionsPrefix(name));
  const out = new Map<string, string[]>();
  for (const { key } of objects) {
    const m = /^modules\/([^/]+)\/([^/]+)\/signature\.json$/.exec(key);
    if (!m) continue;
    const list = out.get(m[1]!) ?? [];
    list.push(m[2]!);
    out.set(m[1]!, list);
  }
  return out;
}

/** The exact version `range` picks among the published versions of `name`, or undefined. */
export async function resolvePublished(store: BlobStore, bucket: string, name: string, range: string): Promise<string | undefined> {
  const versions = (await listPublished(store, bucket, name)).get(name) ?? [];
  return resolveVersion(range, versions);
}

/** The stored manifest of one version (as published; the worker verifies it against the signed checksums). */
export async function readManifest(store: BlobStore, bucket: string, name: string, version: string): Promise<ModuleManifest | undefined> {
  const body = await store.get(bucket, moduleKeys.manifest(name, version));
  if (!body) return undefined;
  const r = ModuleManifest.safeParse(JSON.parse(body.toString('utf8')));
  return r.success ? r.data : undefined;
}
