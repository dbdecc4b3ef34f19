/** Registration, login and the caller's identity. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { LoginLockout } from '../../auth/lockout.ts';
import { passwordLogin } from '../../auth/password-login.ts';
import type { ApiContext } from '../../context.ts';
import { isUniqueViolation } from '../../db/index.ts';
import { findOrg, findUser, findUserByEmail, insertOrg, insertUser, type UserRow } from '../../db/queries/accounts.ts';
import { authOf, checkPasswordStrength, hashPassword, warmDummyHash } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { Identity, LoginBody, RegisterBody, TokenAnswer, type User } from '../schemas.ts';

/**
 * Bodies of register and login above this are refused with PAYLOAD_TOO_LARGE before they are parsed: they hold
 * an e-mail, a password of at most 1024 characters and two names.
 */
export const AUTH_BODY_LIMIT_BYTES = 16 * 1024;

const userJson = (u: UserRow): z.infer<typeof User> => ({ id: u.id, email: u.email, name: u.name, orgId: u.org_id, role: u.role });

export function authRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const rateLimit = { max: ctx.config.authRateLimitMax, timeWindow: ctx.config.authRateLimitWindowMs };
  // Now rather than at the first unknown e-mail, which would otherwise pay a hash on top of the verification.
  warmDummyHash().catch((err: unknown) => ctx.logger.warn({ err }, 'could not prepare the dummy password hash'));
  const lockout = new LoginLockout(ctx.redis, {
    maxFailures: ctx.config.authLockoutMaxFailures, windowMs: ctx.config.authLockoutWindowMs, lockMs: ctx.config.authLockoutMs,
  });

  const r = app.withTypeProvider<ContractTypeProvider>();

  r.route({
    ...endpoint('POST', '/api/auth/register', {
      operationId: 'register', tag: 'auth', access: 'public', body: RegisterBody,
      summary: 'Create an organisation and its first user, who becomes its admin; returns a token.',
      responses: { 201: json('Registered: the user, their organisation and a token.', TokenAnswer) },
      errors: ['WEAK_PASSWORD', 'EMAIL_TAKEN', 'RATE_LIMITED'],
    }),
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const body = req.body;
      // The user's own e-mail and names count as known words: "ana.lopez@acme.example" + "2024" is weak.
      checkPasswordStrength(body.password, [body.email, body.name, body.orgName]);
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
    },
  });

  r.route({
    ...endpoint('POST', '/api/auth/login', {
      operationId: 'login', tag: 'auth', access: 'public', body: LoginBody, summary: 'Log in; returns a token.',
      responses: { 200: json('Logged in: the user, their organisation and a new token.', TokenAnswer) },
      errors: ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'RATE_LIMITED'],
    }),
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const body = req.body;
      // The same check as the dashboard's POST /api/session: lockout first, unknown e-mails counted too.
      const { user, org } = await passwordLogin(ctx, lockout, reply, { email: body.email, password: body.password, ip: req.ip, log: req.log });
      // A user always has its organisation (a foreign key); refused like a wrong password rather than half logged in.
      if (!org) throw new SriError('INVALID_CREDENTIALS');
      const token = await ctx.tokens.sign({ userId: user.id, orgId: user.org_id });
      return reply.status(200).send({ token, user: userJson(user), org });
    },
  });

  r.route({
    ...endpoint('GET', '/api/me', {
      operationId: 'getMe', tag: 'auth', access: 'user', summary: 'The caller and their organisation.',
      responses: { 200: json('The caller and their organisation.', Identity) },
    }),
    preValidation: ctx.tokens.hook(),
    handler: async (req) => {
        const { userId, orgId } = authOf(req);
        const found = await ctx.db.withOrg(orgId, async (tx) => ({ user: await findUser(tx, userId), org: await findOrg(tx, orgId) }));
        if (!found.user || !found.org) throw new SriError('TOKEN_INVALID');
        return { user: userJson(found.user), org: found.org };
    },
  });
}
