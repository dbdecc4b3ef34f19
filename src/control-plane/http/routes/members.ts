/**
 * The organisation's members (docs/security.md "Members"): its admins list them, add one — with an initial password,
 * or with a one-time invitation link whose token only the answer carries (its SHA-256 is stored) — change a role,
 * remove one. Removing a member refuses every token of theirs at once, in every API process (TokenService.revokeUser),
 * and drops their portal sessions. An organisation always keeps an admin (LAST_ADMIN).
 * POST /api/invitations/accept is public: the invitation's token is the credential, and it sets the password.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import type { ApiContext } from '../../context.ts';
import { isUniqueViolation } from '../../db/index.ts';
import { findOrg, insertUser, type UserRow } from '../../db/queries/accounts.ts';
import {
  acceptInvitation, countAdmins, findMember, insertInvitation, listMembers, lockOrgMembers, removeMember, setMemberRole,
  takeInvitation, type MemberRow,
} from '../../db/queries/members.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf, checkPasswordStrength, hashPassword } from '../auth.ts';
import { endpoint, json, noContent, type ContractTypeProvider } from '../openapi.ts';
import { AcceptInvitationBody, CreateMemberBody, IdParams, Invitation, Member, UpdateMemberBody } from '../schemas.ts';
import { AUTH_BODY_LIMIT_BYTES } from './auth.ts';

/** How long an invitation link works. */
export const INVITATION_TTL_MS = 7 * 24 * 3600_000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const iso = (d: Date | string) => new Date(d).toISOString();

const memberJson = (m: MemberRow): z.infer<typeof Member> => ({
  id: m.id, email: m.email, name: m.name, role: m.role, status: m.invited ? 'invited' : 'active',
  invitationExpiresAt: m.invitation_expires_at === null ? null : iso(m.invitation_expires_at), createdAt: iso(m.created_at),
});

const MemberAnswer = z.object({ member: Member });

export function memberRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const admin = adminOnly(ctx);
  const rateLimit = { max: ctx.config.authRateLimitMax, timeWindow: ctx.config.authRateLimitWindowMs };
  const notFound = (id: string) => new SriError('NOT_FOUND', `No member ${id} in your organisation.`);

  /** A new invitation of `userId`: the token for the answer, its hash for the database. */
  const invite = async (tx: Parameters<typeof insertInvitation>[0], orgId: string, userId: string, by: string): Promise<z.infer<typeof Invitation>> => {
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + INVITATION_TTL_MS);
    await insertInvitation(tx, { id: randomUUID(), orgId, userId, tokenSha256: sha256(token), createdBy: by, expiresAt });
    return { token, expiresAt: expiresAt.toISOString() };
  };

  r.route({
    ...endpoint('GET', '/api/members', {
      operationId: 'listMembers', tag: 'members', access: 'admin', summary: 'The organisation\'s members, oldest first (admins only).',
      responses: { 200: json('Every current member, with their role and whether their invitation is pending.', z.object({ members: z.array(Member) })) },
    }),
    preValidation: admin,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { members: (await ctx.db.withOrg(orgId, listMembers)).map(memberJson) };
    },
  });

  r.route({
    ...endpoint('POST', '/api/members', {
      operationId: 'createMember', tag: 'members', access: 'admin', body: CreateMemberBody,
      summary: 'Add a member: with an initial password, or (without one) with a one-time invitation link whose token this answer carries (admins only).',
      responses: { 201: json('The member; `invitation` when no password was given (its token is shown only here).', MemberAnswer.extend({ invitation: Invitation.optional() })) },
      errors: ['EMAIL_TAKEN', 'WEAK_PASSWORD'],
    }),
    preValidation: admin,
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const { orgId, userId: by } = authOf(req);
      const body = req.body;
      const email = body.email.toLowerCase();
      if (body.password !== undefined) checkPasswordStrength(body.password, [body.email, body.name]);
      const passwordHash = body.password === undefined ? null : await hashPassword(body.password);
      const user: UserRow = { id: randomUUID(), org_id: orgId, email, name: body.name, password_hash: passwordHash, role: body.role };
      try {
        const out = await ctx.db.withOrg(orgId, async (tx) => {
          // E-mails are unique across organisations; the unique index is the check (another organisation's users are
          // not visible here), so "taken" says nothing about which organisation has it.
          await insertUser(tx, user);
          const invitation = passwordHash === null ? await invite(tx, orgId, user.id, by) : undefined;
          return { member: (await findMember(tx, user.id))!, invitation };
        });
        return reply.status(201).send({ member: memberJson(out.member), ...(out.invitation ? { invitation: out.invitation } : {}) });
      } catch (e) {
        if (isUniqueViolation(e)) throw new SriError('EMAIL_TAKEN', 'An account with this e-mail already exists (in this or another organisation); use another e-mail.');
        throw e;
      }
    },
  });

  r.route({
    ...endpoint('POST', '/api/members/:id/invitation', {
      operationId: 'reinviteMember', tag: 'members', access: 'admin', params: IdParams,
      summary: 'A new invitation link for a member who has not accepted theirs (the earlier link stops working; admins only).',
      responses: { 201: json('The new invitation (its token is shown only here).', z.object({ invitation: Invitation })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation: admin,
    handler: async (req, reply) => {
      const { orgId, userId: by } = authOf(req);
      const invitation = await ctx.db.withOrg(orgId, async (tx) => {
        const m = await findMember(tx, req.params.id);
        if (!m || !m.invited) throw m ? new SriError('NOT_FOUND', `Member ${req.params.id} has already chosen a password; there is nothing to invite them to.`) : notFound(req.params.id);
        return invite(tx, orgId, m.id, by);
      });
      return reply.status(201).send({ invitation });
    },
  });

  r.route({
    ...endpoint('PATCH', '/api/members/:id', {
      operationId: 'updateMember', tag: 'members', access: 'admin', params: IdParams, body: UpdateMemberBody,
      summary: 'Change a member\'s role (admins only); the organisation always keeps an admin.',
      responses: { 200: json('The member with their new role.', MemberAnswer) },
      errors: ['NOT_FOUND', 'LAST_ADMIN'],
    }),
    preValidation: admin,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const member = await ctx.db.withOrg(orgId, async (tx) => {
        await lockOrgMembers(tx, orgId);
        const m = await findMember(tx, id);
        if (!m) throw notFound(id);
        if (m.role === 'admin' && req.body.role !== 'admin' && await countAdmins(tx) <= 1) throw new SriError('LAST_ADMIN');
        await setMemberRole(tx, id, req.body.role);
        return (await findMember(tx, id))!;
      });
      // The admin guard reads the role from the database on every request; the token hook's cached role goes too.
      ctx.tokens.forgetPrincipal(orgId, id);
      return { member: memberJson(member) };
    },
  });

  r.route({
    ...endpoint('DELETE', '/api/members/:id', {
      operationId: 'removeMember', tag: 'members', access: 'admin', params: IdParams,
      summary: 'Remove a member (admins only): every token and dashboard session of theirs is refused from the next request on, their portal sessions are deleted; their jobs stay.',
      responses: { 204: noContent('Removed.') },
      errors: ['NOT_FOUND', 'LAST_ADMIN'],
    }),
    preValidation: admin,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const providers = await ctx.db.withOrg(orgId, async (tx) => {
        await lockOrgMembers(tx, orgId);
        const m = await findMember(tx, id);
        if (!m) throw notFound(id);
        if (m.role === 'admin' && await countAdmins(tx) <= 1) throw new SriError('LAST_ADMIN');
        const names = await removeMember(tx, id);
        // Before the commit: if Redis cannot take the mark the removal fails whole (SERVICE_UNAVAILABLE) rather than
        // leaving a removed member's cached look-ups honoured for AUTH_USER_CACHE_MS.
        await ctx.tokens.revokeUser(orgId, id);
        return names;
      });
      // Their portal sessions: the records went with the removal; the sessions themselves are in Redis.
      if (providers.length) {
        await ctx.redis.del(...providers.map((p) => keys.session(orgId, id, p)))
          .catch((err: unknown) => req.log.warn({ err, userId: id }, 'could not delete a removed member\'s provider sessions'));
      }
      return reply.status(204).send();
    },
  });

  r.route({
    ...endpoint('POST', '/api/invitations/accept', {
      operationId: 'acceptInvitation', tag: 'members', access: 'public', body: AcceptInvitationBody,
      summary: 'Accept an invitation: sets the invited member\'s password (then log in with it). The link works once, until it expires.',
      responses: { 200: json('The member is active; log in with their e-mail and the new password.', z.object({ email: z.string(), name: z.string(), orgName: z.string() })) },
      errors: ['INVITATION_INVALID', 'WEAK_PASSWORD', 'RATE_LIMITED'],
    }),
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req) => {
      const { token, password } = req.body;
      const tokenSha256 = sha256(token);
      // Checked before the password, so a weak password does not use the link up; hashed outside the transaction.
      const peek = await ctx.db.asSystem((tx) => takeInvitation(tx, tokenSha256));
      if (!peek) throw new SriError('INVITATION_INVALID');
      checkPasswordStrength(password, [peek.email, peek.name]);
      const hash = await hashPassword(password);
      const accepted = await ctx.db.asSystem(async (tx) => {
        const inv = await takeInvitation(tx, tokenSha256);
        if (!inv) return undefined;
        await acceptInvitation(tx, inv, hash);
        return inv;
      });
      if (!accepted) throw new SriError('INVITATION_INVALID');
      const org = await ctx.db.withOrg(accepted.org_id, (tx) => findOrg(tx, accepted.org_id));
      return { email: accepted.email, name: accepted.name, orgName: org?.name ?? '' };
    },
  });
}
