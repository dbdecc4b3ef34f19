/**
 * The demo portal's blocker pages (docs/scripts.md "Blockers"): each kind of page that stands between a flow and its
 * data, served on demand at `/blockers/{page}` so the worker's classification (src/execution-plane/job/blocker.ts)
 * is tried and tested without the internet. Static imitations of the DOM signatures and status codes real portals
 * answer with — no widget script of any CAPTCHA service is loaded, and nothing here can be solved.
 * `?lang=es` serves the Spanish texts (default English).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';

/** The site key the demo CAPTCHA imitations carry. */
export const DEMO_BLOCKER_SITE_KEY = 'demo-blocker-site-key';

type Lang = 'en' | 'es';
interface BlockerPage { readonly status: number; readonly title: Record<Lang, string>; readonly body: Record<Lang, string> }

const loginForm = (lang: Lang) => `<form method="post" action="/login" id="login">
<label>${lang === 'es' ? 'Usuario' : 'User name'} <input id="username" name="username" autocomplete="username"></label>
<label>${lang === 'es' ? 'Contraseña' : 'Password'} <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="submit" type="submit">${lang === 'es' ? 'Ingresar' : 'Sign in'}</button>
</form>`;

const both = (s: string): Record<Lang, string> => ({ en: s, es: s });
const widget = (cls: string, name: string, response: string) => both(`<form method="post" action="/blockers/submit" id="check">
<p>Please confirm you are a person. / Confirme que es una persona.</p>
<div class="${cls}" data-sitekey="${DEMO_BLOCKER_SITE_KEY}" id="widget" style="width:304px;height:78px;border:1px solid #ccc">${name}</div>
<textarea name="${response}" style="display:none"></textarea>
<button type="submit">Continue</button>
</form>`);

/** A small picture of distorted letters, inline (a data: URL): no request leaves the page for it. */
const CAPTCHA_SVG = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" fill="#eee"/><text x="10" y="28" font-size="22" transform="skewX(-12)">x7Kq2</text></svg>')}`;

/** The pages by name (the path after `/blockers/`). */
export const DEMO_BLOCKER_PAGES: Readonly<Record<string, BlockerPage>> = {
  // A login wall as a portal without the provider's own logged-out address shows one: 401 and a sign-in form.
  'login-wall': { status: 401, title: { en: 'Sign in required', es: 'Inicio de sesión requerido' }, body: { en: `<p>Sign in to continue.</p>${loginForm('en')}`, es: `<p>Inicie sesión para continuar.</p>${loginForm('es')}` } },
  recaptcha: { status: 200, title: both('Security check'), body: widget('g-recaptcha', 'reCAPTCHA', 'g-recaptcha-response') },
  hcaptcha: { status: 200, title: both('Security check'), body: widget('h-captcha', 'hCaptcha', 'h-captcha-response') },
  turnstile: { status: 200, title: both('Just a moment...'), body: widget('cf-turnstile', 'Turnstile', 'cf-turnstile-response') },
  'image-captcha': {
    status: 200, title: { en: 'Security check', es: 'Verificación de seguridad' },
    body: both(`<form method="post" action="/blockers/submit" id="check">
<img id="captcha-image" src="${CAPTCHA_SVG}" alt="captcha" width="120" height="40">
<label>Code / Código <input id="captcha-code" name="captcha" autocomplete="off"></label>
<button type="submit">Continue</button>
</form>`),
  },
  'rate-limit': {
    status: 429, title: { en: 'Too many requests', es: 'Demasiadas solicitudes' },
    body: { en: '<p>You have sent too many requests. Please wait a few minutes and try again.</p>', es: '<p>Ha enviado demasiadas solicitudes. Espere unos minutos e intente de nuevo.</p>' },
  },
  maintenance: {
    status: 503, title: { en: 'Under maintenance', es: 'Sitio en mantenimiento' },
    body: { en: '<p>The portal is under maintenance. We will be back soon.</p>', es: '<p>El portal se encuentra en mantenimiento programado. Volveremos pronto.</p>' },
  },
  denied: {
    status: 403, title: { en: 'Access denied', es: 'Acceso denegado' },
    body: { en: '<p>You do not have permission to view this page.</p>', es: '<p>Usted no tiene permiso para ver esta página.</p>' },
  },
};

/**
 * Registers `/blockers` (a list of links to each page), `/blockers/:page` (and `/blockers/login-redirect`, which sends the visitor to the demo portal's login
 * page — its provider's logged-out address — as a portal whose session expired does; `/blockers/session-ends`, which
 * ends the session too, lives in demo-portal.ts beside the sessions). `html` writes a page of the portal's layout.
 */
export function registerDemoBlockers(app: FastifyInstance, html: (reply: FastifyReply, status: number, title: string, body: string, lang?: Lang) => FastifyReply): void {
  // Link texts with underscores: "rate-limit" as text would make this list a rate-limit page.
  app.get('/blockers', async (_req, reply) => html(reply, 200, 'Blocker pages',
    `<ul>${[...Object.keys(DEMO_BLOCKER_PAGES), 'login-redirect', 'session-ends'].map((n) => `<li><a id="${n}" href="/blockers/${n}">${n.replace(/-/g, '_')}</a></li>`).join('')}</ul>`));
  app.get('/blockers/login-redirect', async (_req, reply) => reply.redirect('/login?redirect=%2Fblockers%2Flogin-redirect'));
  app.get('/blockers/:page', async (req, reply) => {
    const name = (req.params as { page: string }).page;
    const lang: Lang = (req.query as Record<string, string | undefined>)['lang'] === 'es' ? 'es' : 'en';
    const p = Object.hasOwn(DEMO_BLOCKER_PAGES, name) ? DEMO_BLOCKER_PAGES[name] : undefined;
    if (!p) return html(reply, 404, 'Not found', '<p>No such page.</p>');
    if (p.status === 429 || p.status === 503) reply.header('retry-after', '120');
    return html(reply, p.status, p.title[lang], p.body[lang], lang);
  });
}
