/**
 * The organisation's secrets (docs/security.md "Tenant secrets"): `PUT /api/secrets/{name}` stores one (sealed
 * under SECRETS_KEYS), `GET /api/secrets` lists names and times, `DELETE /api/secrets/{name}` removes one. No
 * endpoint returns a value, sealed or not: a secret reaches only the jobs whose flow fills it. Writing, deleting and
 * reading the audit are for the organisation's admins; every member may list the names (to write flows).
 * Every change is recorded in secret_audit, with no value.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import type { ApiContext } from '../../context.ts';
import { countSecrets, deleteSecret, insertSecretAudit, listSecretAudit, listSecrets, upsertSecret, type SecretAuditRow, type SecretInfo } from '../../db/queries/secrets.ts';
import { MAX_SECRET_CHARS, MAX_SECRETS_PER_ORG, requireKeys, SECRET_NAME, sealSecret } from '../../secrets/vault.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';

/** Bodies of PUT /api/secrets/{name} above this are refused with PAYLOAD_TOO_LARGE (the value is at most 16 KiB). */
export const SECRET_BODY_LIMIT_BYTES = 128 * 1024;

export const SecretParams = z.object({ name: z.string().regex(SECRET_NAME, 'must be 1-64 characters of A-Z a-z 0-9 _ . -') });
export const SecretBody = z.object({ value: z.string().min(1, 'must not be empty').max(MAX_SECRET_CHARS) }).strict();
export const SecretAuditQuery = z.object({
  name: z.string().regex(SECRET_NAME).optional(),
  jobId: z.string().min(1).max(128).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
}).strict();

const iso = (d: Date | string) => new Date(d).toISOString();
const secretJson = (s: SecretInfo) => ({ name: s.name, keyId: s.key_id, createdAt: iso(s.created_at), updatedAt: iso(s.updated_at) });
const auditJson = (a: SecretAuditRow) => ({ id: a.id, name: a.secret_name, action: a.action, jobId: a.job_id, userId: a.user_id, at: iso(a.at) });

export function secretRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const preHandler = ctx.tokens.hook();
  const admin = adminOnly(ctx);

  app.put('/api/secrets/:name', {
    preHandler: admin,
    bodyLimit: SECRET_BODY_LIMIT_BYTES,
    schema: doc({
      summary: 'Store a secret of the organisation (admins): flows use it with fill {secretRef: name}, scripts with helpers.fillSecret(selector, name). '
        + 'It is encrypted at rest and never returned by any endpoint.',
      tags: ['secrets'], params: SecretParams, body: SecretBody,
    }),
  }, async (req, reply) => {
    const { orgId, userId } = authOf(req);
    const { name } = SecretParams.parse(req.params);
    const { value } = SecretBody.parse(req.body ?? {});
    const keys = requireKeys(ctx.config.secretsKeys);
    const sealed = sealSecret(keys, orgId, name, value);
    const { info, created } = await ctx.db.withOrg(orgId, async (tx) => {
      const r = await upsertSecret(tx, { orgId, name, userId, ...sealed });
      if (r.created && (await countSecrets(tx)) > MAX_SECRETS_PER_ORG) {
        throw new SriError('VALIDATION_FAILED', `An organisation may keep at most ${MAX_SECRETS_PER_ORG} secrets; delete one first.`);
      }
      await insertSecretAudit(tx, [{ id: randomUUID(), orgId, name, action: r.created ? 'created' : 'updated', userId }]);
      return r;
    });
    req.log.info({ orgId, userId, secretName: name, keyId: info.key_id, created }, created ? 'secret created' : 'secret replaced');
    return reply.status(created ? 201 : 200).send({ secret: secretJson(info) });
  });

  app.get('/api/secrets', {
    preHandler, schema: doc({ summary: 'The organisation\'s secrets: names, key ids and times — never values.', tags: ['secrets'] }),
  }, async (req) => {
    const { orgId } = authOf(req);
    return { secrets: (await ctx.db.withOrg(orgId, listSecrets)).map(secretJson) };
  });

  app.get('/api/secrets/audit', {
    preHandler: admin,
    schema: doc({
      summary: 'The audit of the organisation\'s secrets (admins): created, updated, deleted, and each job they were sent to — names only.',
      tags: ['secrets'], query: SecretAuditQuery,
    }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const q = SecretAuditQuery.parse(req.query ?? {});
    return { events: (await ctx.db.withOrg(orgId, (tx) => listSecretAudit(tx, q))).map(auditJson) };
  });

  app.delete('/api/secrets/:name', {
    preHandler: admin,
    schema: doc({ summary: 'Delete a secret of the organisation (admins); flows that fill it fail until it is stored again.', tags: ['secrets'], params: SecretParams }),
  }, async (req) => {
    const { orgId, userId } = authOf(req);
    const { name } = SecretParams.parse(req.params);
    await ctx.db.withOrg(orgId, async (tx) => {
      if (!(await deleteSecret(tx, name))) throw new SriError('NOT_FOUND', `No secret named "${name}" in your organisation; list them with GET /api/secrets.`);
      await insertSecretAudit(tx, [{ id: randomUUID(), orgId, name, action: 'deleted', userId }]);
    });
    req.log.info({ orgId, userId, secretName: name }, 'secret deleted');
    return { name, deleted: true };
  });
}
