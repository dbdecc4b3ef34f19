/**
 * Flows: compiled from steps, hashed and signed once at creation, uploaded to the scripts bucket and stored with
 * their script. Exactly one flow per provider per organisation is active (a partial unique index guards it).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import semver from 'semver';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { moduleRefOfScript, moduleRefScript } from '../../../shared/modules/ref.ts';
import { signScript } from '../../../shared/signing.ts';
import type { ApiContext } from '../../context.ts';
import { isUniqueViolation } from '../../db/index.ts';
import { activateFlow, findFlow, flowVersionExists, insertFlow, listFlows, type FlowRow } from '../../db/queries/flows.ts';
import { findProvider } from '../../db/queries/providers.ts';
import { compileSteps } from '../../flows/compile.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { CreateFlowBody, Flow, FlowWithScript, IdParams } from '../schemas.ts';

export function flowJson(f: FlowRow): z.infer<typeof Flow> {
  return {
    id: f.id, providerId: f.provider_id, version: f.version, name: f.name, description: f.description ?? null,
    steps: f.steps, scriptHash: f.script_hash, signature: f.signature, scriptKey: f.script_key, active: f.active,
    maxAttempts: f.max_attempts, record: f.record ?? 'none', ...(moduleRefOfScript(f.script) === undefined ? {} : { module: moduleRefOfScript(f.script) }),
    createdAt: new Date(f.created_at).toISOString(),
  };
}

/** S3 key of a flow's compiled script: `scripts/{orgId}/{providerId}/{version}.js` (docs/security.md "Tenant isolation"). */
export const flowScriptKey = (orgId: string, providerId: string, version: string) => `scripts/${orgId}/${providerId}/${version}.js`;

/** Semver without build metadata: the version becomes part of an S3 key, whose allowed characters exclude "+". */
export function checkVersion(version: string): void {
  if (semver.valid(version) !== version) throw new SriError('FLOW_INVALID', `version "${version}" is not a semantic version such as 1.0.0`);
  if (version.includes('+')) throw new SriError('FLOW_INVALID', `version "${version}": build metadata (+…) is not supported; use e.g. 1.0.1`);
}

export function flowRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();

  r.route({
    ...endpoint('POST', '/api/flows', {
      operationId: 'createFlow', tag: 'flows', access: 'user', body: CreateFlowBody,
      summary: 'Create a flow from steps (compiled, hashed, signed, uploaded); it is inactive until activated.',
      responses: { 201: json('The flow, compiled and stored.', z.object({ flow: Flow })) },
      errors: ['FLOW_INVALID', 'PROVIDER_NOT_FOUND', 'FLOW_VERSION_EXISTS'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const body = req.body;
      checkVersion(body.version);
      const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, body.providerId));
      if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
      // A module flow's script is its signed reference (modules/ref.ts): hashed, signed and verified like a compiled one.
      const { steps, script } = body.module !== undefined ? { steps: [], script: moduleRefScript(body.module) } : compileSteps(body.steps ?? [], provider);
      const { scriptHash, signature } = signScript(script, ctx.config.scriptSigningSecret);

      if (await ctx.db.withOrg(orgId, (tx) => flowVersionExists(tx, provider.id, body.version))) throw new SriError('FLOW_VERSION_EXISTS');
      // Under the organisation's own prefix: a shared scripts/{providerId}/{version}.js told a second organisation that
      // another one had used that provider and version (it got a key of its own when the shared one was taken), and two
      // organisations creating the same version at once could overwrite each other's script. Flows created before keep
      // the key they were stored with (their jobs and the workers read whatever scriptKey says). Jobs carry the script
      // inline as well, so the key only matters to producers that send scriptKey alone.
      const scriptKey = flowScriptKey(orgId, provider.id, body.version);
      try {
        await ctx.blobStore.put(ctx.config.s3ScriptsBucket, scriptKey, script, 'text/javascript');
      } catch (err) {
        throw new SriError('SERVICE_UNAVAILABLE', 'Could not upload the script to S3; check GET /ready.', { cause: err });
      }
      try {
        const flow = await ctx.db.withOrg(orgId, (tx) => insertFlow(tx, {
          id: randomUUID(), org_id: orgId, provider_id: provider.id, version: body.version, name: body.name,
          description: body.description ?? null, steps, script, script_hash: scriptHash, signature, script_key: scriptKey, created_by: userId,
          max_attempts: body.maxAttempts ?? null, record: body.record ?? null,
        }));
        return reply.status(201).send({ flow: flowJson(flow) });
      } catch (e) {
        if (isUniqueViolation(e)) throw new SriError('FLOW_VERSION_EXISTS');
        throw e;
      }
    },
  });

  r.route({
    ...endpoint('GET', '/api/flows', {
      operationId: 'listFlows', tag: 'flows', access: 'user', summary: 'The organisation\'s flows, newest first.',
      responses: { 200: json('The flows (without their scripts).', z.object({ flows: z.array(Flow) })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { flows: (await ctx.db.withOrg(orgId, listFlows)).map((f) => flowJson(f)) };
    },
  });

  r.route({
    ...endpoint('GET', '/api/flows/:id', {
      operationId: 'getFlow', tag: 'flows', access: 'user', params: IdParams, summary: 'One flow with its generated script.',
      responses: { 200: json('The flow and its script.', z.object({ flow: FlowWithScript })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const flow = await ctx.db.withOrg(orgId, (tx) => findFlow(tx, id));
      if (!flow) throw new SriError('NOT_FOUND', `No flow ${id} in your organisation.`);
      return { flow: { ...flowJson(flow), script: flow.script } };
    },
  });

  r.route({
    ...endpoint('POST', '/api/flows/:id/activate', {
      operationId: 'activateFlow', tag: 'flows', access: 'user', params: IdParams,
      summary: 'Make this flow the active one of its provider (deactivates the others); runs of the provider use it.',
      responses: { 200: json('The flow, now active.', z.object({ flow: Flow })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const flow = await ctx.db.withOrg(orgId, async (tx) => {
        const found = await findFlow(tx, id);
        return found && activateFlow(tx, found);
      });
      if (!flow) throw new SriError('NOT_FOUND', `No flow ${id} in your organisation.`);
      return { flow: flowJson(flow) };
    },
  });
}
