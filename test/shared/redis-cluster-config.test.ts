/** REDIS_CLUSTER_NODES in the configuration of both planes (docs/configuration.md) and the parser behind it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { loadWorkerConfig } from '../../src/execution-plane/config.ts';
import { parseClusterNodes } from '../../src/shared/redis.ts';
import { TEST_JWT_SECRET, TEST_SIGNING_SECRET } from '../support/services.ts';

const api = (env: Record<string, string>) => loadApiConfig({ JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, ...env });
const worker = (env: Record<string, string>) => loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, ...env });

describe('REDIS_CLUSTER_NODES', () => {
  it('parses host:port lists, IPv6 in brackets, and names the entry it refuses', () => {
    assert.deepEqual(parseClusterNodes('127.0.0.1:7000, redis-1.internal:7001,[::1]:7002'),
      [{ host: '127.0.0.1', port: 7000 }, { host: 'redis-1.internal', port: 7001 }, { host: '::1', port: 7002 }]);
    for (const bad of ['redis-1', '127.0.0.1:0', 'h:70000', 'redis://h:1', ' , ']) assert.throws(() => parseClusterNodes(bad), Error, bad);
  });

  it('is read by both planes; unset means one Redis at REDIS_URL; a bad list stops the start with CONFIG_INVALID', () => {
    const nodes = [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }];
    assert.deepEqual(api({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' }).redisClusterNodes, nodes);
    assert.deepEqual(worker({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' }).redisClusterNodes, nodes);
    assert.equal(api({}).redisClusterNodes, undefined);
    assert.equal(worker({ REDIS_CLUSTER_NODES: '' }).redisClusterNodes, undefined);
    for (const load of [api, worker]) {
      assert.throws(() => load({ REDIS_CLUSTER_NODES: '10.0.0.1' }), (e: Error & { code?: string }) =>
        e.code === 'CONFIG_INVALID' && /REDIS_CLUSTER_NODES must be host:port/.test(e.message) && /"10\.0\.0\.1"/.test(e.message));
    }
  });
});
