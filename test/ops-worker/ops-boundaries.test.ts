/**
 * What the issue asks of the ops worker's surroundings, read from the files themselves (docs/operations.md
 * "Architecture", "Setup with systemd"):
 *   - the control plane (the API) holds no engine socket and runs no shell command: no module of src/control-plane
 *     imports child_process or names an engine socket or DOCKER_HOST;
 *   - the systemd unit runs `sri ops-worker` as a dedicated user in the engine's group, restarted always, its whole
 *     cgroup killed on restart, hardened.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|lua)$/.test(name) ? [path] : [];
  });
}

describe('ops worker boundaries', () => {
  it('the control plane holds no engine socket and runs no shell command', () => {
    const files = sources(join(ROOT, 'src/control-plane'));
    assert.ok(files.length > 20, `read the control plane's sources (${files.length})`);
    const offending = files.flatMap((f) => {
      const text = readFileSync(f, 'utf8');
      return [
        /from ['"](node:)?child_process['"]|require\(['"](node:)?child_process['"]\)/.test(text) ? `${f}: imports child_process` : '',
        /docker\.sock|podman\.sock|DOCKER_HOST/.test(text) ? `${f}: names an engine socket` : '',
      ].filter(Boolean);
    });
    assert.deepEqual(offending, []);
  });

  it('the systemd unit: `sri ops-worker` as a dedicated user in the engine\'s group, Restart=always, hardened', () => {
    const unit = readFileSync(join(ROOT, 'deploy/systemd/sri-ops-worker.service'), 'utf8');
    const service = Object.fromEntries(unit.split(/^\[/m).find((s) => s.startsWith('Service]'))!.split('\n')
      .filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.match(service['ExecStart'] ?? '', /\bops-worker$/);
    assert.equal(service['User'], 'sri-ops');
    assert.equal(service['SupplementaryGroups'], 'docker');
    assert.equal(service['Restart'], 'always');
    assert.equal(service['KillMode'], 'control-group');
    assert.equal(service['NoNewPrivileges'], 'true');
    assert.equal(service['UMask'], '0077');
    assert.equal(service['StateDirectoryMode'], '0700');
  });
});
