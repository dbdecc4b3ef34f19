/**
 * `sri enrol create | list | revoke` against a real API (OPERATOR_TOKEN set), in-process with captured output, and
 * once through the bin for the exit code and error line of a missing token.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '../../src/cli/main.ts';
import { enrolTokenKey } from '../../src/shared/enrolment.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { runSri } from '../support/cli.ts';

const OPERATOR_TOKEN = 'operator-token-for-cli-tests-0123456789-abc';

describe('sri enrol (worker enrolment through the API)', () => {
  let t: TestApi;
  const sri = async (args: string[], env: Record<string, string> = { OPERATOR_TOKEN }) => {
    const lines: string[] = [];
    await buildProgram(env, { out: (x) => lines.push(x) }).exitOverride().parseAsync(['node', 'sri', 'enrol', ...args, '--api', t.api.url]);
    return lines;
  };

  before(async () => { t = await startTestApi({ OPERATOR_TOKEN }); });
  after(async () => { await t?.stop(); });

  it('creates a token (first line), lists the enrolment and revokes the worker', async () => {
    const [token, about] = await sri(['create', '--name', 'cli', '--ttl', '120']);
    assert.match(token!, /^sri-enrol\.[A-Za-z0-9_-]{43}$/);
    assert.equal(await t.redis.exists(enrolTokenKey(token!)), 1);
    const workerId = /worker (cli-[0-9a-f]{10})/.exec(about!)?.[1];
    assert.ok(workerId, about);
    assert.match((await sri(['list'])).join('\n'), new RegExp(`${workerId}\\s+pending`));
    assert.match((await sri(['revoke', workerId])).join('\n'), /its Redis user is deleted/);
    assert.equal(JSON.parse((await sri(['list', '--json'])).join('\n')).enrolments[0].status, 'revoked');
    await assert.rejects(sri(['revoke', 'nobody']), (e: { code?: string }) => e.code === 'WORKER_NOT_FOUND');
    await assert.rejects(sri(['list'], { OPERATOR_TOKEN: `${OPERATOR_TOKEN}-wrong` }), (e: { code?: string }) => e.code === 'OPERATOR_ONLY');
  });

  it('says what is missing without an operator token: error OPERATOR_ONLY, exit 1', async () => {
    const r = await runSri(['enrol', 'list', '--api', t.api.url], { OPERATOR_TOKEN: '' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error OPERATOR_ONLY: give the operator token with --operator-token or OPERATOR_TOKEN/m);
  });
});
