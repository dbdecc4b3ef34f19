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
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { Secret, SecretAuditEvent } from '../schemas.ts';

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
const secretJson = (s: SecretInfo): z.infer<typeof Secret> => ({ name: s.name, keyId: s.key_id, createdAt: iso(s.created_at), updatedAt: iso(s.updated_at) });
const auditJson = (a: SecretAuditRow): z.infer<typeof SecretAuditEvent> => ({ id: a.id, name: a.secret_name, action: a.action, jobId: a.job_id, userId: a.user_id, at: iso(a.at) });

export function secretRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const member = ctx.tokens.hook();
  const admin = adminOnly(ctx);
  const SecretAnswer = z.object({ secret: Secret });

  r.route({
    ...endpoint('PUT', '/api/secrets/:name', {
      operationId: 'putSecret', tag: 'secrets', access: 'admin', params: SecretParams, body: SecretBody,
      summary: 'Store a secret of the organisation (admins): flows use it with fill {secretRef: name}, scripts with helpers.fillSecret(selector, name). '
        + 'It is encrypted at rest and never returned by any endpoint.',
      responses: { 201: json('Stored (a new name).', SecretAnswer), 200: json('Replaced (the name existed).', SecretAnswer) },
      errors: ['SECRETS_NOT_CONFIGURED'],
    }),
    preValidation: admin,
    bodyLimit: SECRET_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const { name } = req.params;
      const { value } = req.body;
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
      return created ? reply.status(201).send({ secret: secretJson(info) }) : reply.status(200).send({ secret: secretJson(info) });
    },
  });

  r.route({
    ...endpoint('GET', '/api/secrets', {
      operationId: 'listSecrets', tag: 'secrets', access: 'user', summary: 'The organisation\'s secrets: names, key ids and times — never values.',
      responses: { 200: json('The secrets, without their values.', z.object({ secrets: z.array(Secret) })) },
    }),
    preValidation: member,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { secrets: (await ctx.db.withOrg(orgId, listSecrets)).map(secretJson) };
    },
  });

  r.route({
    ...endpoint('GET', '/api/secrets/audit', {
      operationId: 'listSecretAudit', tag: 'secrets', access: 'admin', querystring: SecretAuditQuery,
      summary: 'The audit of the organisation\'s secrets (admins): created, updated, deleted, and each job they were sent to — names only.',
      responses: { 200: json('The audit events, newest first.', z.object({ events: z.array(SecretAuditEvent) })) },
    }),
    preValidation: admin,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { events: (await ctx.db.withOrg(orgId, (tx) => listSecretAudit(tx, req.query))).map(auditJson) };
    },
  });

  r.route({
    ...endpoint('DELETE', '/api/secrets/:name', {
      operationId: 'deleteSecret', tag: 'secrets', access: 'admin', params: SecretParams,
      summary: 'Delete a secret of the organisation (admins); flows that fill it fail until it is stored again.',
      responses: { 200: json('Deleted.', z.object({ name: z.string(), deleted: z.literal(true) })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation: admin,
    handler: async (req) => {
      const { orgId, userId } = authOf(req);
      const { name } = req.params;
      await ctx.db.withOrg(orgId, async (tx) => {
        if (!(await deleteSecret(tx, name))) throw new SriError('NOT_FOUND', `No secret named "${name}" in your organisation; list them with GET /api/secrets.`);
        await insertSecretAudit(tx, [{ id: randomUUID(), orgId, name, action: 'deleted', userId }]);
      });
      req.log.info({ orgId, userId, secretName: name }, 'secret deleted');
      return { name, deleted: true as const };
    },
  });
}
