/**
 * The guard of the platform operator's endpoints (/api/operator/*: worker enrolment and revocation). Workers serve
 * every organisation, so no organisation's admin may enrol or revoke one: the operator holds OPERATOR_TOKEN, a
 * setting of the API alone (workers refuse to start with it), compared in constant time. Unset, the endpoints answer
 * OPERATOR_ONLY to everyone. An organisation's API token is no operator token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { SriError } from '../../shared/errors.ts';
import type { ApiContext } from '../context.ts';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export function operatorOnly(ctx: ApiContext) {
  // Digests of equal length, so the comparison takes the same time whatever the token's length.
  const expected = ctx.config.operatorToken === undefined ? undefined : digest(ctx.config.operatorToken);
  return async (req: FastifyRequest) => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!expected || !m || !timingSafeEqual(digest(m[1]!), expected)) {
      // One answer for no token, a wrong one and an API without OPERATOR_TOKEN: callers learn nothing about the setting.
      throw new SriError('OPERATOR_ONLY');
    }
  };
}
