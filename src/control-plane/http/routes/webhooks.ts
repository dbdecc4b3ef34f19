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
import { describeStoredError, refuseUrl } from '../../webhooks/target.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';
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

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function webhookJson(w: WebhookRow) {
  return { id: w.id, url: w.url, events: w.events, createdAt: iso(w.created_at) };
}

/** A delivery as the API shows it: its status, the receiver's status code and an error class — never the receiver's text. */
export function deliveryJson(d: DeliveryRow) {
  const { errorClass, refusedAddressClass, lastError } = describeStoredError(d.last_error);
  return {
    id: d.id, webhookId: d.webhook_id, jobId: d.job_id, jobAttempt: d.job_attempt, event: d.event, status: d.status,
    attempts: d.attempts, errorClass, refusedAddressClass, lastError, responseStatus: d.response_status, createdAt: iso(d.created_at),
    lastAttemptAt: iso(d.last_attempt_at), nextAttemptAt: iso(d.next_attempt_at), deliveredAt: iso(d.delivered_at),
  };
}

export function webhookRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const preHandler = adminOnly(ctx);

  app.post('/api/webhooks', {
    preHandler,
    schema: doc({
      summary: 'Create a webhook (admins): job results of the organisation are POSTed to url for the events chosen (job.done, job.failed, '
        + 'job.dead, job.cancelled, or * for all), signed with the secret in this answer — shown only now. Public addresses only: '
        + 'a non-public IP address or localhost in url answers WEBHOOK_TARGET_REFUSED; names are checked at every delivery.',
      tags: ['webhooks'], body: WebhookBody,
    }),
  }, async (req, reply) => {
    const { orgId, userId } = authOf(req);
    const body = WebhookBody.parse(req.body ?? {});
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
  });

  app.get('/api/webhooks', {
    preHandler, schema: doc({ summary: 'The organisation\'s webhooks (admins; without their secrets).', tags: ['webhooks'] }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const rows = await ctx.db.withOrg(orgId, (tx) => listWebhooks(tx));
    return { webhooks: rows.map(webhookJson) };
  });

  app.delete('/api/webhooks/:id', {
    preHandler, schema: doc({ summary: 'Delete a webhook and its delivery records (admins); a retry in progress stops.', tags: ['webhooks'], params: IdParams }),
  }, async (req, reply) => {
    const { orgId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const deleted = await ctx.db.withOrg(orgId, (tx) => deleteWebhook(tx, id));
    if (!deleted) throw new SriError('NOT_FOUND', `No webhook ${id} in your organisation.`);
    req.log.info({ orgId, webhookId: id }, 'webhook deleted');
    return reply.status(204).send();
  });

  app.get('/api/webhooks/:id/deliveries', {
    preHandler,
    schema: doc({ summary: 'The webhook\'s deliveries (admins), newest first: status, attempts, the receiver\'s status code and an error class — never its answer.', tags: ['webhooks'], params: IdParams, query: DeliveriesQuery }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const { limit } = DeliveriesQuery.parse(req.query ?? {});
    const deliveries = await ctx.db.withOrg(orgId, async (tx) => {
      if (!(await findWebhook(tx, id))) throw new SriError('NOT_FOUND', `No webhook ${id} in your organisation.`);
      return listDeliveries(tx, id, limit);
    });
    return { deliveries: deliveries.map(deliveryJson) };
  });
}
