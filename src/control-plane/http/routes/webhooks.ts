/**
 * Webhooks of the caller's organisation (docs/webhooks.md): create (the signing secret is in the answer, once),
 * list, delete, and the deliveries of one. Another organisation's webhook ids answer 404 like ids that do not exist
 * (row-level security scopes every query).
 *
 * Admins only: a webhook makes the API connect where its creator says, and its deliveries tell how that went, so
 * it is a setting of the organisation, not of each member. A URL whose host is a non-public IP literal (any
 * spelling) or localhost is refused here with WEBHOOK_TARGET_REFUSED; names are checked at every delivery, after
 * resolving them (webhooks/target.ts).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { NEVER_REACHABLE } from '../../../shared/net/address-class.ts';
import type { ApiContext } from '../../context.ts';
import { countWebhooks, deleteWebhook, findWebhook, insertWebhook, listDeliveries, listWebhooks, type DeliveryRow, type WebhookRow } from '../../db/queries/webhooks.ts';
import { WEBHOOK_EVENTS } from '../../webhooks/deliver.ts';
import { encryptSecret, generateWebhookSecret } from '../../webhooks/secrets.ts';
import { DELIVERY_ERROR_CLASSES, describeStoredError, refuseUrl } from '../../webhooks/target.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, noContent, type ContractTypeProvider } from '../openapi.ts';
import { IdParams } from '../schemas.ts';

/** Webhooks one organisation may have. */
export const MAX_WEBHOOKS_PER_ORG = 20;

const WebhookUrl = z.string().max(2048).refine((u) => {
  try {
    const url = new URL(u);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL without user or password');

export const WebhookBody = z.object({
  url: WebhookUrl,
  events: z.array(z.enum([...WEBHOOK_EVENTS, '*'])).min(1).max(WEBHOOK_EVENTS.length + 1)
    .transform((events) => [...new Set(events)]),
}).strict();

export const DeliveriesQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
}).strict();

const Timestamp = z.iso.datetime();
export const Webhook = z.object({
  id: z.string(), url: z.string(), events: z.array(z.string()).describe('job.done, job.failed, job.dead, job.cancelled, or * for all.'), createdAt: Timestamp,
}).meta({ id: 'Webhook' });
export const WebhookDelivery = z.object({
  id: z.string(), webhookId: z.string(), jobId: z.string(), jobAttempt: z.number().int(), event: z.string(),
  status: z.enum(['pending', 'retrying', 'delivered', 'failed']),
  attempts: z.number().int(),
  errorClass: z.enum([...DELIVERY_ERROR_CLASSES, 'unknown']).nullable().describe('Why the last attempt failed (docs/webhooks.md); never the receiver\'s text.'),
  refusedAddressClass: z.string().nullable(),
  lastError: z.string().nullable(),
  responseStatus: z.number().int().nullable().describe('The receiver\'s HTTP status at the last attempt.'),
  createdAt: Timestamp, lastAttemptAt: Timestamp.nullable(), nextAttemptAt: Timestamp.nullable(), deliveredAt: Timestamp.nullable(),
}).meta({ id: 'WebhookDelivery' });

const iso = (d: Date | string) => new Date(d).toISOString();
const isoOrNull = (d: Date | string | null) => (d === null ? null : iso(d));

export function webhookJson(w: WebhookRow): z.infer<typeof Webhook> {
  return { id: w.id, url: w.url, events: w.events, createdAt: iso(w.created_at) };
}

/** A delivery as the API shows it: its status, the receiver's status code and an error class — never the receiver's text. */
export function deliveryJson(d: DeliveryRow): z.infer<typeof WebhookDelivery> {
  const { errorClass, refusedAddressClass, lastError } = describeStoredError(d.last_error);
  return {
    id: d.id, webhookId: d.webhook_id, jobId: d.job_id, jobAttempt: d.job_attempt, event: d.event, status: d.status,
    attempts: d.attempts, errorClass, refusedAddressClass, lastError, responseStatus: d.response_status, createdAt: iso(d.created_at),
    lastAttemptAt: isoOrNull(d.last_attempt_at), nextAttemptAt: isoOrNull(d.next_attempt_at), deliveredAt: isoOrNull(d.delivered_at),
  };
}

export function webhookRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = adminOnly(ctx);

  r.route({
    ...endpoint('POST', '/api/webhooks', {
      operationId: 'createWebhook', tag: 'webhooks', access: 'admin', body: WebhookBody,
      summary: 'Create a webhook (admins): job results of the organisation are POSTed to url for the events chosen (job.done, job.failed, '
        + 'job.dead, job.cancelled, or * for all), signed with the secret in this answer — shown only now. Public addresses only: '
        + 'a non-public IP address or localhost in url answers WEBHOOK_TARGET_REFUSED; names are checked at every delivery.',
      responses: {
        201: json('The webhook, and the secret its deliveries are signed with (never shown again).', z.object({
          webhook: Webhook, secret: z.string().describe('The signing secret (Standard Webhooks, docs/webhooks.md); store it now.'),
        })),
      },
      errors: ['WEBHOOK_TARGET_REFUSED'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const body = req.body;
      const refused = refuseUrl(new URL(body.url), ctx.config.webhookAllowPrivate);
      if (refused) {
        throw new SriError('WEBHOOK_TARGET_REFUSED', `The webhook URL's host is a ${refused} address; webhooks go only to public addresses. `
          + (NEVER_REACHABLE.has(refused)
            ? 'Link-local, metadata, unspecified and multicast addresses are never allowed, whatever WEBHOOK_ALLOW_PRIVATE says.'
            : 'Use a public host name or address, or set WEBHOOK_ALLOW_PRIVATE=true on the API for receivers on your own network.'),
        { details: { addressClass: refused } });
      }
      const secret = generateWebhookSecret();
      const row = await ctx.db.withOrg(orgId, async (tx) => {
        if ((await countWebhooks(tx)) >= MAX_WEBHOOKS_PER_ORG) {
          throw new SriError('VALIDATION_FAILED', `An organisation may have at most ${MAX_WEBHOOKS_PER_ORG} webhooks; delete one first.`);
        }
        return insertWebhook(tx, {
          id: randomUUID(), orgId, url: body.url, events: body.events, secretEnc: encryptSecret(ctx.config.jwtSecret, secret), createdBy: userId,
        });
      });
      req.log.info({ orgId, webhookId: row.id, events: row.events }, 'webhook created');
      return reply.status(201).send({ webhook: webhookJson(row), secret });
    },
  });

  r.route({
    ...endpoint('GET', '/api/webhooks', {
      operationId: 'listWebhooks', tag: 'webhooks', access: 'admin', summary: 'The organisation\'s webhooks (admins; without their secrets).',
      responses: { 200: json('The webhooks.', z.object({ webhooks: z.array(Webhook) })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const rows = await ctx.db.withOrg(orgId, (tx) => listWebhooks(tx));
      return { webhooks: rows.map(webhookJson) };
    },
  });

  r.route({
    ...endpoint('DELETE', '/api/webhooks/:id', {
      operationId: 'deleteWebhook', tag: 'webhooks', access: 'admin', params: IdParams,
      summary: 'Delete a webhook and its delivery records (admins); a retry in progress stops.',
      responses: { 204: noContent('Deleted.') },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const deleted = await ctx.db.withOrg(orgId, (tx) => deleteWebhook(tx, id));
      if (!deleted) throw new SriError('NOT_FOUND', `No webhook ${id} in your organisation.`);
      req.log.info({ orgId, webhookId: id }, 'webhook deleted');
      return reply.status(204).send();
    },
  });

  r.route({
    ...endpoint('GET', '/api/webhooks/:id/deliveries', {
      operationId: 'listWebhookDeliveries', tag: 'webhooks', access: 'admin', params: IdParams, querystring: DeliveriesQuery,
      summary: 'The webhook\'s deliveries (admins), newest first: status, attempts, the receiver\'s status code and an error class — never its answer.',
      responses: { 200: json('The deliveries.', z.object({ deliveries: z.array(WebhookDelivery) })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const { limit } = req.query;
      const deliveries = await ctx.db.withOrg(orgId, async (tx) => {
        if (!(await findWebhook(tx, id))) throw new SriError('NOT_FOUND', `No webhook ${id} in your organisation.`);
        return listDeliveries(tx, id, limit);
      });
      return { deliveries: deliveries.map(deliveryJson) };
    },
  });
}
