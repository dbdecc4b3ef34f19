/** Registration, login and the caller's identity. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { SriError } from '../../../shared/errors.ts';
import type { ApiContext } from '../../context.ts';
import { isUniqueViolation } from '../../db/index.ts';
import { findOrg, findUser, findUserByEmail, insertOrg, insertUser } from '../../db/queries/accounts.ts';
import { authOf, checkPasswordStrength, hashPassword, verifyPassword } from '../auth.ts';
import { doc } from '../openapi.ts';
import { LoginBody, RegisterBody } from '../schemas.ts';

/**
 * Bodies of register and login above this are refused with PAYLOAD_TOO_LARGE before they are parsed: they hold
 * an e-mail, a password of at most 1024 characters and two names.
 */
export const AUTH_BODY_LIMIT_BYTES = 16 * 1024;

const userJson = (u: { id: string; email: string; name: string; org_id: string; role: string }) => ({ id: u.id, email: u.email, name: u.name, orgId: u.org_id, role: u.role });

export function authRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const rateLimit = { max: ctx.config.authRateLimitMax, timeWindow: ctx.config.authRateLimitWindowMs };

  app.post('/api/auth/register', {
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    schema: doc({ summary: 'Create an organisation and its first user, who becomes its admin; returns a token.', tags: ['auth'], body: RegisterBody, auth: false }),
  }, async (req, reply) => {
    const body = RegisterBody.parse(req.body);
    checkPasswordStrength(body.password);
    const email = body.email.toLowerCase();
    const passwordHash = await hashPassword(body.password);
    const org = { id: randomUUID(), name: body.orgName };
    // The user who registers an organisation is its admin (dead letters, quotas); users added later are members.
    const user = { id: randomUUID(), org_id: org.id, email, name: body.name, password_hash: passwordHash, role: 'admin' as const };
    try {
      await ctx.db.asSystem(async (tx) => {
        if (await findUserByEmail(tx, email)) throw new SriError('EMAIL_TAKEN');
        await insertOrg(tx, org);
        await insertUser(tx, user);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new SriError('EMAIL_TAKEN');
      throw e;
    }
    // Into sri:orgs and the queue's round-robin ring; a run registers it again, so a Redis hiccup here loses nothing.
    await ctx.queue.registerOrg(org.id).catch((err: unknown) => req.log.warn({ err, orgId: org.id }, 'could not register the organisation with the queue'));
    const token = await ctx.tokens.sign({ userId: user.id, orgId: org.id });
    return reply.status(201).send({ token, user: userJson(user), org });
  });

  app.post('/api/auth/login', {
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    schema: doc({ summary: 'Log in; returns a token.', tags: ['auth'], body: LoginBody, auth: false }),
  }, async (req) => {
    const body = LoginBody.parse(req.body);
    const user = await ctx.db.asSystem((tx) => findUserByEmail(tx, body.email));
    if (!(await verifyPassword(user?.password_hash, body.password)) || !user) throw new SriError('INVALID_CREDENTIALS');
    const org = await ctx.db.withOrg(user.org_id, (tx) => findOrg(tx, user.org_id));
    const token = await ctx.tokens.sign({ userId: user.id, orgId: user.org_id });
    return { token, user: userJson(user), org };
  });

  app.get('/api/me', {
    preHandler: ctx.tokens.hook(),
    schema: doc({ summary: 'The caller and their organisation.', tags: ['auth'] }),
  }, async (req) => {
    const { userId, orgId } = authOf(req);
    const found = await ctx.db.withOrg(orgId, async (tx) => ({ user: await findUser(tx, userId), org: await findOrg(tx, orgId) }));
    if (!found.user || !found.org) throw new SriError('TOKEN_INVALID');
    return { user: userJson(found.user), org: found.org };
  });
}
