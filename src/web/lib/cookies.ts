/**
 * Reading the cookies a user pastes to connect a provider: either a Cookie header (`a=1; b=2`, as the browser's
 * developer tools show it) or the JSON a cookie-export extension writes (an array of objects with name, value,
 * domain, path, secure, httpOnly, sameSite, expirationDate). The result has the API's cookie shape.
 */
export interface PortalCookie {
  name: string;
  value: string;
  domain?: string;
  path?: string;
  expires?: number;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: 'Strict' | 'Lax' | 'None';
}

export type CookieParse = { ok: true; cookies: PortalCookie[] } | { ok: false; reason: string };

const SAME_SITE: Readonly<Record<string, PortalCookie['sameSite']>> = {
  strict: 'Strict', lax: 'Lax', none: 'None', no_restriction: 'None',
};

/** `defaultDomain`: the domain header-style cookies get (the provider's first host, without its port). */
export function parseCookies(text: string, defaultDomain: string | undefined): CookieParse {
  const t = text.trim();
  if (t === '') return { ok: false, reason: 'empty' };
  if (t.startsWith('[') || t.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (e) {
      return { ok: false, reason: `JSON: ${(e as Error).message}` };
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { cookies?: unknown }).cookies;
    if (!Array.isArray(list)) return { ok: false, reason: 'expected an array of cookies' };
    const cookies: PortalCookie[] = [];
    for (const [i, c] of list.entries()) {
      const o = c as Record<string, unknown>;
      if (!o || typeof o.name !== 'string' || o.name === '' || typeof o.value !== 'string') return { ok: false, reason: `cookie ${i + 1} has no name or value` };
      const sameSite = typeof o.sameSite === 'string' ? SAME_SITE[o.sameSite.toLowerCase()] : undefined;
      const expires = typeof o.expirationDate === 'number' ? o.expirationDate : typeof o.expires === 'number' ? o.expires : undefined;
      cookies.push({
        name: o.name, value: o.value,
        ...(typeof o.domain === 'string' ? { domain: o.domain } : defaultDomain ? { domain: defaultDomain } : {}),
        ...(typeof o.path === 'string' ? { path: o.path } : { path: '/' }),
        ...(expires !== undefined && expires > 0 ? { expires } : {}),
        ...(typeof o.httpOnly === 'boolean' ? { httpOnly: o.httpOnly } : {}),
        ...(typeof o.secure === 'boolean' ? { secure: o.secure } : {}),
        ...(sameSite ? { sameSite } : {}),
      });
    }
    return cookies.length ? { ok: true, cookies } : { ok: false, reason: 'no cookies' };
  }
  const cookies: PortalCookie[] = [];
  for (const part of t.replace(/^cookie:\s*/i, '').split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) return { ok: false, reason: `"${p.slice(0, 40)}" is not name=value` };
    cookies.push({ name: p.slice(0, eq).trim(), value: p.slice(eq + 1).trim(), ...(defaultDomain ? { domain: defaultDomain } : {}), path: '/' });
  }
  return cookies.length ? { ok: true, cookies } : { ok: false, reason: 'no cookies' };
}

/** The host of an allowedHosts entry without its port, for header-style cookies (`*.example.com` → `.example.com`). */
export function cookieDomainOf(allowedHost: string | undefined): string | undefined {
  if (!allowedHost) return undefined;
  const host = allowedHost.startsWith('[') ? allowedHost.slice(0, allowedHost.indexOf(']') + 1) : allowedHost.replace(/:\d+$/, '');
  return host.startsWith('*.') ? host.slice(1) : host;
}
