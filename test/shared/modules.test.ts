/**
 * Module bundles' contract (src/shared/modules): manifest validation, references and range resolution, signing and
 * verifying a bundle (tampered file, wrong checksum, unknown algorithm, unknown key id, relabelled version), and the
 * job message's `module` field.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { moduleAllows, moduleFiles, ModuleManifest, resolveVersion } from '../../src/shared/modules/manifest.ts';
import { moduleRefScript, parseModuleRef } from '../../src/shared/modules/ref.ts';
import {
  buildSignedBundle, bundleScriptText, checksumsText, moduleSigningKeyring, parseChecksums, signedText, verifyBundle,
} from '../../src/shared/modules/signature.ts';
import { derivedKeyring, parseKeyring } from '../../src/shared/sealed.ts';
import { JobMessage } from '../../src/shared/schemas.ts';
import { signScript } from '../../src/shared/signing.ts';
import { TEST_SIGNING_SECRET } from '../support/services.ts';

const manifest = (over: Record<string, unknown> = {}) => ({ name: 'invoices', version: '1.0.0', entry: 'main.js', ...over });
const issues = (input: unknown) => {
  const r = ModuleManifest.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('module manifest', () => {
  it('accepts a minimal manifest and fills the defaults', () => {
    const m = ModuleManifest.parse(manifest());
    assert.deepEqual(m.allowedHosts, []);
    assert.deepEqual(m.secrets, []);
    assert.deepEqual(moduleFiles(m), ['main.js']);
  });

  it('puts the entry last in load order', () => {
    const m = ModuleManifest.parse(manifest({ files: ['main.js', 'lib.js', 'util.js'] }));
    assert.deepEqual(moduleFiles(m), ['lib.js', 'util.js', 'main.js']);
  });

  it('refuses bad names, versions, file names, unknown fields and an entry missing from files', () => {
    assert.match(issues(manifest({ name: 'Invoices' })).join(), /name/);
    assert.match(issues(manifest({ name: '../x' })).join(), /name/);
    assert.match(issues(manifest({ version: '1.0' })).join(), /version: must be an exact semver/);
    assert.match(issues(manifest({ version: '1.0.0+build.5' })).join(), /version/);
    assert.match(issues(manifest({ entry: 'sub/main.js' })).join(), /entry/);
    assert.match(issues(manifest({ entry: 'main.ts' })).join(), /entry/);
    assert.match(issues(manifest({ files: ['lib.js'] })).join(), /files: must include the entry/);
    assert.match(issues(manifest({ files: ['main.js', 'main.js'] })).join(), /names a file twice/);
    assert.match(issues(manifest({ extra: true })).join(), /extra|Unrecognized/i);
    assert.match(issues(manifest({ allowedHosts: ['bad host'] })).join(), /allowedHosts/);
    assert.match(issues(manifest({ allow: { orgs: ['a/b'] } })).join(), /allow\.orgs/);
    assert.match(issues(manifest({ allow: { teams: ['x'] } })).join(), /allow/);
  });

  it('allows every organisation without allow, else the listed ones (and plans, when the org has one)', () => {
    const open = ModuleManifest.parse(manifest());
    const some = ModuleManifest.parse(manifest({ allow: { orgs: ['org-a'], plans: ['pro'] } }));
    assert.equal(moduleAllows(open, 'anyone'), true);
    assert.equal(moduleAllows(some, 'org-a'), true);
    assert.equal(moduleAllows(some, 'org-b'), false);
    assert.equal(moduleAllows(some, 'org-b', 'pro'), true);
    assert.equal(moduleAllows(ModuleManifest.parse(manifest({ allow: {} })), 'org-a'), false, 'an empty allow allows nobody');
  });
});

describe('module references and ranges', () => {
  it('parses name@version, name@range and name@latest, and refuses the rest', () => {
    assert.deepEqual(parseModuleRef('invoices@1.2.3'), { name: 'invoices', range: '1.2.3' });
    assert.deepEqual(parseModuleRef('invoices@^1'), { name: 'invoices', range: '^1' });
    assert.deepEqual(parseModuleRef('a-b@latest'), { name: 'a-b', range: 'latest' });
    for (const bad of ['invoices', 'invoices@', '@^1', 'Invoices@1', 'invoices@not-a-range', 'in/voices@1']) {
      assert.ok('error' in parseModuleRef(bad), bad);
    }
  });

  it('resolves a range to the highest published version it accepts', () => {
    const published = ['1.0.0', '1.1.0', '1.2.0-beta.1', '2.0.0', 'junk'];
    assert.equal(resolveVersion('^1', published), '1.1.0');
    assert.equal(resolveVersion('~1.0', published), '1.0.0');
    assert.equal(resolveVersion('1.0.0', published), '1.0.0');
    assert.equal(resolveVersion('latest', published), '2.0.0');
    assert.equal(resolveVersion('^1.2.0-beta.0', published), '1.2.0-beta.1', 'a prerelease only when the range names one');
    assert.equal(resolveVersion('^3', published), undefined);
    assert.equal(resolveVersion('^1', []), undefined);
  });

  it('takes module in a job message instead of a script, never both', () => {
    const ref = 'invoices@^1';
    const { scriptHash, signature } = signScript(moduleRefScript(ref), TEST_SIGNING_SECRET);
    const base = { jobId: 'j1', orgId: 'o1', userId: 'u1', providerId: 'p1', providerName: 'demo', flowId: 'f1', flowVersion: '1', scriptHash, signature, createdAt: 1 };
    assert.equal(JobMessage.safeParse({ ...base, module: ref }).success, true);
    assert.equal(JobMessage.safeParse({ ...base, module: 'invoices@nope' }).success, false);
    assert.equal(JobMessage.safeParse({ ...base, module: ref, scriptContent: 'x' }).success, false);
    assert.equal(JobMessage.safeParse(base).success, false);
  });
});

describe('module signature', () => {
  const keyring = parseKeyring(`k2:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`);
  const files = new Map([['main.js', Buffer.from('export default async function run({ helpers }) { helpers.setResult({ v: lib() }); }\n')], ['lib.js', Buffer.from('function lib() { return 1; }\n')]]);
  const m = ModuleManifest.parse(manifest({ files: ['main.js', 'lib.js'] }));
  const bundle = () => new Map(buildSignedBundle(keyring, m, files).objects);
  const reader = (objects: Map<string, Buffer>) => async (f: string) => objects.get(f);

  it('signs with the first key of the ring and verifies every file', async () => {
    const objects = bundle();
    assert.deepEqual([...objects.keys()].sort(), ['SHA256SUMS', 'lib.js', 'main.js', 'manifest.json', 'signature.json']);
    const sig = JSON.parse(objects.get('signature.json')!.toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(sig).sort(), ['alg', 'keyId', 'sig', 'v']);
    assert.equal(sig['alg'], 'hmac-sha256');
    assert.equal(sig['keyId'], 'k2');
    const v = await verifyBundle(keyring, 'invoices', '1.0.0', reader(objects));
    assert.ok(v.ok, JSON.stringify(v));
    const text = bundleScriptText(v.manifest, v.files);
    assert.ok(text.indexOf('function lib()') < text.indexOf('export default'), 'helpers files before the entry');
  });

  it('verifies with an older key still in the ring (rotation)', async () => {
    const old = parseKeyring(`k1:${keyring.key('k1')!.toString('base64')}`);
    const objects = new Map(buildSignedBundle(old, m, files).objects);
    assert.ok((await verifyBundle(keyring, 'invoices', '1.0.0', reader(objects))).ok);
  });

  it('refuses a file altered after signing (checksum)', async () => {
    const objects = bundle();
    objects.set('lib.js', Buffer.from('function lib() { return 2; }\n'));
    const v = await verifyBundle(keyring, 'invoices', '1.0.0', reader(objects));
    assert.equal(v.ok ? 'ok' : v.reason, 'checksum');
  });

  it('refuses checksums rewritten to match an altered file (signature)', async () => {
    const objects = bundle();
    objects.set('lib.js', Buffer.from('function lib() { return 2; }\n'));
    const covered = new Map([...objects].filter(([f]) => f !== 'SHA256SUMS' && f !== 'signature.json'));
    objects.set('SHA256SUMS', Buffer.from(checksumsText(covered)));
    const v = await verifyBundle(keyring, 'invoices', '1.0.0', reader(objects));
    assert.equal(v.ok ? 'ok' : v.reason, 'signature');
  });

  it('refuses a missing file, an extra summed file and a malformed SHA256SUMS', async () => {
    const missing = bundle();
    missing.delete('lib.js');
    assert.equal((await verifyBundle(keyring, 'invoices', '1.0.0', reader(missing))).ok, false);
    assert.equal(parseChecksums('abc  x.js\n'), undefined);
    assert.equal(parseChecksums(`${'a'.repeat(64)}  x.js`), undefined, 'no final newline');
    assert.equal(parseChecksums(`${'a'.repeat(64)}  ../x.js\n`), undefined);
  });

  it('refuses an unknown algorithm, an ed25519 signature without publisher keys, and an unknown key id', async () => {
    const withSig = (sig: unknown) => {
      const objects = bundle();
      objects.set('signature.json', Buffer.from(JSON.stringify(sig)));
      return reader(objects);
    };
    const good = JSON.parse(bundle().get('signature.json')!.toString()) as Record<string, unknown>;
    const reason = async (sig: unknown) => { const v = await verifyBundle(keyring, 'invoices', '1.0.0', withSig(sig)); return v.ok ? 'ok' : v.reason; };
    assert.equal(await reason({ ...good, alg: 'rsa-sha1' }), 'unsupported-alg');
    assert.equal(await reason({ ...good, alg: 'none' }), 'unsupported-alg');
    assert.equal(await reason({ v: 1, alg: 'ed25519', keyId: 'publisher-1', sig: 'A'.repeat(86) }), 'unsupported-alg');
    assert.equal(await reason({ ...good, keyId: 'k9' }), 'unknown-key');
    assert.equal(await reason({ ...good, sig: 'f'.repeat(64) }), 'signature');
    assert.equal(await reason({ ...good, extra: 1 }), 'malformed');
  });

  it('refuses a bundle copied under another name or version', async () => {
    const objects = bundle();
    const v = await verifyBundle(keyring, 'invoices', '1.0.1', reader(objects));
    assert.equal(v.ok ? 'ok' : v.reason, 'signature');
    assert.match(signedText('invoices', '1.0.0', 'x'), /^sri-module-v1\ninvoices@1\.0\.0\n/);
  });

  it('falls back to a key derived from SCRIPT_SIGNING_SECRET, apart from the transport key', () => {
    const ring = moduleSigningKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET });
    assert.deepEqual(ring.kids, ['signing']);
    assert.notDeepEqual(ring.key('signing'), derivedKeyring(TEST_SIGNING_SECRET, 'sri transport keys v1', 'signing').key('signing'));
    assert.equal(moduleSigningKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET, moduleSigningKeys: keyring }), keyring);
  });
});
