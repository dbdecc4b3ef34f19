/**
 * A provider's session health as workers get it (docs/sessions.md): its session check, checked against the schema
 * and the provider's hosts, and its login flow compiled by the step compiler, hashed and signed with
 * SCRIPT_SIGNING_SECRET like a flow's script — the worker verifies both before it runs it (security invariant 1).
 */
import { SriError } from '../../shared/errors.ts';
import { SessionCheck, type LoginScript } from '../../shared/provider-catalogue.ts';
import { describeZodError } from '../../shared/schemas.ts';
import { signScript } from '../../shared/signing.ts';
import type { Provider } from '../db/queries/providers.ts';
import { compileLoginSteps, hostAllowed } from '../flows/compile.ts';

export interface ProviderSessionHealth {
  readonly sessionCheck?: SessionCheck;
  readonly login?: LoginScript;
}

/**
 * The provider's check and signed login script. Throws FLOW_INVALID naming the provider when either is not valid,
 * or when a login flow comes without a check (the worker could not tell when to run it) or without a signing secret.
 */
export function providerSessionHealth(p: Provider, scriptSigningSecret: string | undefined): ProviderSessionHealth {
  const invalid = (why: string) => new SriError('FLOW_INVALID', `Provider ${p.id}: ${why}`);
  let sessionCheck: SessionCheck | undefined;
  if (p.sessionCheck !== undefined) {
    const r = SessionCheck.safeParse(p.sessionCheck);
    if (!r.success) throw invalid(`sessionCheck is not valid: ${describeZodError(r.error)}`);
    if (!hostAllowed(new URL(r.data.url), p.allowedHosts)) throw invalid(`sessionCheck.url's host is not in the provider's allowedHosts (${p.allowedHosts.join(', ')})`);
    sessionCheck = r.data;
  }
  if (p.loginSteps === undefined) return sessionCheck ? { sessionCheck } : {};
  if (!sessionCheck) throw invalid('a login flow needs a sessionCheck: the worker runs it when the check finds the session logged out');
  if (!scriptSigningSecret) throw invalid('its login flow cannot be published without SCRIPT_SIGNING_SECRET to sign it');
  const { script } = compileLoginSteps(p.loginSteps, { id: p.id, name: p.name, allowedHosts: p.allowedHosts });
  return { sessionCheck, login: { script, ...signScript(script, scriptSigningSecret) } };
}
