/**
 * The provider catalogue and provider sessions. A session (cookies, optional credentials) goes to Redis under the
 * contract's key with a TTL, where workers read it; PostgreSQL records only that the user is connected and until
 * when. Cookie values and credentials are never logged (the logger redacts them, and no handler logs bodies), and
 * the session is sealed (AES-256-GCM under TRANSPORT_KEYS) before it reaches Redis.
 */
import type { FastifyInstance } from 'fastify';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { Session } from '../../../shared/schemas.ts';
import { sealSession, transportKeyring } from '../../../shared/transport-secrets.ts';
import type { ApiContext } from '../../context.ts';
import { deleteConnection, findProvider, listConnections, listProviders, upsertConnection } from '../../db/queries/providers.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';
import { ConnectBody, IdParams } from '../schemas.ts';

export function providerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const preHandler = ctx.tokens.hook();

  app.get('/api/providers', { preHandler, schema: doc({ summary: 'The provider catalogue.', tags: ['providers'] }) }, async (req) => {
    const { orgId } = authOf(req);
    return { providers: await ctx.db.withOrg(orgId, listProviders) };
  });

  app.get('/api/providers/connected', {
    preHandler, schema: doc({ summary: 'Providers the caller is connected to.', tags: ['providers'] }),
  }, async (req) => {
    const { orgId, userId } = authOf(req);
    const rows = await ctx.db.withOrg(orgId, (tx) => listConnections(tx, userId));
    // A session deleted from Redis by hand (or expired early) is not a connection any more.
    const present = await Promise.all(rows.map((c) => ctx.redis.exists(keys.session(orgId, userId, c.providerName))));
    return {
      connections: rows.filter((_, i) => present[i] === 1).map((c) => ({
        providerId: c.providerId, providerName: c.providerName,
        connectedAt: c.connectedAt.toISOString(), expiresAt: c.expiresAt.toISOString(),
      })),
    };
  });

  app.post('/api/providers/:id/connect', {
    preHandler,
    schema: doc({ summary: 'Store the caller\'s portal session for this provider.', tags: ['providers'], params: IdParams, body: ConnectBody }),
  }, async (req) => {
    const { orgId, userId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const body = ConnectBody.parse(req.body);
    const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, id));
    if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
    const connectedAt = new Date();
    const expiresAt = new Date(connectedAt.getTime() + ctx.config.sessionTtlSeconds * 1000);
    const session = Session.parse({ cookies: body.cookies, credentials: body.credentials, connectedAt: connectedAt.getTime() });
    // Sealed under TRANSPORT_KEYS and bound to its key: Redis never holds the cookies or credentials in clear.
    const key = keys.session(orgId, userId, provider.name);
    await ctx.redis.set(key, sealSession(transportKeyring(ctx.config), key, session), 'EX', ctx.config.sessionTtlSeconds);
    await ctx.db.withOrg(orgId, (tx) => upsertConnection(tx, { orgId, userId, providerId: provider.id, connectedAt, expiresAt }));
    return { providerId: provider.id, connected: true, expiresAt: expiresAt.toISOString() };
  });

  app.delete('/api/providers/:id/connect', {
    preHandler, schema: doc({ summary: 'Forget the caller\'s session for this provider.', tags: ['providers'], params: IdParams }),
  }, async (req) => {
    const { orgId, userId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, id));
    if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
    await ctx.redis.del(keys.session(orgId, userId, provider.name));
    await ctx.db.withOrg(orgId, (tx) => deleteConnection(tx, userId, provider.id));
    return { providerId: provider.id, connected: false };
  });
}
