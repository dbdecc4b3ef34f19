/**
 * The provider catalogue and provider sessions. A session (cookies, optional credentials) goes to Redis under the
 * contract's key with a TTL, where workers read it; PostgreSQL records only that the user is connected and until
 * when. Cookie values and credentials are never logged (the logger redacts them, and no handler logs bodies), and
 * the session is sealed (AES-256-GCM under TRANSPORT_KEYS) before it reaches Redis.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { Session } from '../../../shared/schemas.ts';
import { SEED_RULE, TotpSeed } from '../../../shared/totp.ts';
import { sealSession, transportKeyring } from '../../../shared/transport-secrets.ts';
import type { ApiContext } from '../../context.ts';
import { deleteConnection, findProvider, listConnections, listProviders, upsertConnection } from '../../db/queries/providers.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { ConnectBody, Connected, Connection, Disconnected, IdParams, Provider, ProviderHealth } from '../schemas.ts';
import { readProviderHealth } from '../../../shared/provider-gate/gate.ts';

/**
 * The connection's TOTP seeds, checked and normalised (src/shared/totp.ts). A bad one is refused by name: the seed
 * itself never enters the error, the log or the answer.
 */
function totpSeeds(raw: Record<string, unknown> | undefined): Record<string, TotpSeed> | undefined {
  if (raw === undefined) return undefined;
  const out: Record<string, TotpSeed> = {};
  for (const [name, value] of Object.entries(raw)) {
    const r = TotpSeed.safeParse(value);
    if (!r.success) {
      throw new SriError('TOTP_SEED_INVALID', `The TOTP seed "${name}" ${SEED_RULE}; send the secret the portal showed when you set up an authenticator app (the secret= part of an otpauth:// link), not a code.`, { details: { name } });
    }
    out[name] = r.data;
  }
  return out;
}

export function providerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();

  r.route({
    ...endpoint('GET', '/api/providers', {
      operationId: 'listProviders', tag: 'providers', access: 'user', summary: 'The provider catalogue.',
      responses: { 200: json('Every provider, with the hosts its flows may visit.', z.object({ providers: z.array(Provider) })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { providers: (await ctx.db.withOrg(orgId, listProviders)).map((p) => ({ ...p, pacing: p.pacing ?? {} })) };
    },
  });

  r.route({
    ...endpoint('GET', '/api/providers/:id/health', {
      operationId: 'getProviderHealth', tag: 'providers', access: 'user', params: IdParams,
      summary: 'The provider\'s pacing as it stands now: its circuit breaker, a maintenance window in force, the next start its spacing allows, this minute\'s requests.',
      responses: { 200: json('The provider\'s gate, shared by every organisation (docs/providers.md).', ProviderHealth) },
      errors: ['PROVIDER_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, req.params.id));
      if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
      const h = await readProviderHealth(ctx.redis, provider.name, provider.pacing ?? {});
      const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
      return {
        providerId: provider.id, providerName: provider.name,
        breaker: { enabled: h.breaker.enabled, state: h.breaker.state, consecutiveFailures: h.breaker.consecutiveFailures, openUntil: iso(h.breaker.openUntil), changedAt: iso(h.breaker.changedAt) },
        maintenance: { active: h.maintenance.active, endsAt: iso(h.maintenance.endsAt) },
        nextStartAt: iso(h.nextStartAt), requestsThisMinute: h.requestsThisMinute,
      };
    },
  });

  r.route({
    ...endpoint('GET', '/api/providers/connected', {
      operationId: 'listConnections', tag: 'providers', access: 'user', summary: 'Providers the caller is connected to, each connected or expired (a job found the portal logged out and no login flow could sign in again).',
      responses: { 200: json('The caller\'s live provider sessions.', z.object({ connections: z.array(Connection) })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId, userId } = authOf(req);
      const rows = await ctx.db.withOrg(orgId, (tx) => listConnections(tx, userId));
      // A session deleted from Redis by hand (or expired early) is not a connection any more.
      const present = await Promise.all(rows.map((c) => ctx.redis.exists(keys.session(orgId, userId, c.providerName))));
      return {
        connections: rows.filter((_, i) => present[i] === 1).map((c) => ({
          providerId: c.providerId, providerName: c.providerName,
          connectedAt: c.connectedAt.toISOString(), expiresAt: c.expiresAt.toISOString(),
          status: c.expiredAt ? 'expired' as const : 'connected' as const, expiredAt: c.expiredAt?.toISOString() ?? null,
        })),
      };
    },
  });

  r.route({
    ...endpoint('POST', '/api/providers/:id/connect', {
      operationId: 'connectProvider', tag: 'providers', access: 'user', params: IdParams, body: ConnectBody,
      summary: 'Store the caller\'s portal session for this provider (cookies, optional credentials and TOTP seeds), sealed, for SESSION_TTL_SECONDS.',
      responses: { 200: json('Connected: runs of this provider use this session until it expires.', Connected) },
      errors: ['PROVIDER_NOT_FOUND', 'TOTP_SEED_INVALID'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId, userId } = authOf(req);
      const body = req.body;
      const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, req.params.id));
      if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
      const connectedAt = new Date();
      const expiresAt = new Date(connectedAt.getTime() + ctx.config.sessionTtlSeconds * 1000);
      const session = Session.parse({ cookies: body.cookies, credentials: body.credentials, totp: totpSeeds(body.totp), connectedAt: connectedAt.getTime(), ttlSeconds: ctx.config.sessionTtlSeconds });
      // Sealed under TRANSPORT_KEYS and bound to its key: Redis never holds the cookies or credentials in clear.
      const key = keys.session(orgId, userId, provider.name);
      await ctx.redis.set(key, sealSession(transportKeyring(ctx.config), key, session), 'EX', ctx.config.sessionTtlSeconds);
      await ctx.db.withOrg(orgId, (tx) => upsertConnection(tx, { orgId, userId, providerId: provider.id, connectedAt, expiresAt }));
      return { providerId: provider.id, connected: true as const, expiresAt: expiresAt.toISOString() };
    },
  });

  r.route({
    ...endpoint('DELETE', '/api/providers/:id/connect', {
      operationId: 'disconnectProvider', tag: 'providers', access: 'user', params: IdParams, summary: 'Forget the caller\'s session for this provider.',
      responses: { 200: json('Disconnected.', Disconnected) },
      errors: ['PROVIDER_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId, userId } = authOf(req);
      const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, req.params.id));
      if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
      await ctx.redis.del(keys.session(orgId, userId, provider.name));
      await ctx.db.withOrg(orgId, (tx) => deleteConnection(tx, userId, provider.id));
      return { providerId: provider.id, connected: false as const };
    },
  });
}
