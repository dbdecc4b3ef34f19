/**
 * A faithful local imitation of the SRI's portal (issue 16; docs/sri.md), mounted by the demo portal under /sri:
 *
 * - login with RUC or cédula, password and an optional additional CI; a sliding session (about 25 minutes idle);
 *   a CAPTCHA on the login after failed attempts;
 * - "Comprobantes electrónicos recibidos": year, month, day (or all) and type filters, an invisible CAPTCHA on the
 *   search that can be switched on, a paged results table with each document's XML and RIDE (PDF), and the report of
 *   the results as text;
 * - the authorisation web service (SOAP autorizacionComprobante), public as the real one;
 * - a nightly maintenance window (503 with the portal's maintenance page) and a rate limit (429).
 *
 * Its documents come from src/sri/generate.ts (sriDataset(seed)). Tests switch its behaviour through
 * /__admin/sri/… (outside /sri: never in maintenance, never rate-limited, not in the request log).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { sriDataset, sriDocumentsFor, SRI_DEFAULT_SEED, SRI_DEFAULT_YEAR, SRI_DEMO_RECEPTOR, SRI_PAGE_SIZE, authorisationXml, type SriGeneratedDocument } from '../../sri/generate.ts';
import { reportTxt, ridePdf, soapAuthorisation, soapFault, wsdl } from './files.ts';
import {
  captchaWidget, homePage, loginForm, MAINTENANCE_BODY, RATE_LIMIT_BODY, recibidosPage, sriPage, TIPO_OPTIONS, type SearchView,
} from './pages.ts';

/** Where the imitation lives under the demo portal. */
export const SRI_PREFIX = '/sri';
/** Its pages and services, relative to the demo portal's origin (the real portal's paths, under /sri). */
export const SRI_PATHS = Object.freeze({
  login: `${SRI_PREFIX}/auth/login`,
  logout: `${SRI_PREFIX}/auth/logout`,
  home: `${SRI_PREFIX}/sri-en-linea/inicio`,
  recibidos: `${SRI_PREFIX}/comprobantes-electronicos-internet/pages/consultas/recibidos/comprobantesRecibidos.jsf`,
  descarga: `${SRI_PREFIX}/comprobantes-electronicos-internet/descarga`,
  reporte: `${SRI_PREFIX}/comprobantes-electronicos-internet/pages/consultas/recibidos/reporte.txt`,
  autorizacion: `${SRI_PREFIX}/comprobantes-electronicos-ws/AutorizacionComprobantesOffline`,
});

/** The organisation's login: its RUC, or its legal representative's cédula, and this password. */
export const SRI_DEMO_RUC = SRI_DEMO_RECEPTOR.ruc;
export const SRI_DEMO_CEDULA = '1710034065';
export const SRI_DEMO_PASSWORD = 'sri-demo-password';
export const SRI_SESSION_COOKIE = 'SRI_SESSION';
/** The site key of the imitation's reCAPTCHA-shaped widgets; the demo portal's token (DEMO_CAPTCHA_TOKEN) passes them. */
export const SRI_CAPTCHA_SITE_KEY = 'demo-site-key';
export const SRI_CAPTCHA_TOKEN = 'demo-captcha-token';
const CAPTCHA_ANSWER = 'human';

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

/** The switches a test turns (POST /__admin/sri/settings with any subset). */
export const SriPortalSettingsSchema = z.object({
  /** Seed of the documents (sriDataset). */
  seed: z.number().int(),
  /** A session ends after this long without a request; each request renews it. @default 1_500_000 (25 min) */
  sessionIdleMs: z.number().int().min(1_000).max(86_400_000),
  /** Failed logins (in a row, per client address) after which the login asks for a CAPTCHA; 0 = never. @default 3 */
  loginCaptchaAfterFailures: z.number().int().min(0).max(1_000),
  /** The search button's invisible CAPTCHA. @default false */
  searchCaptcha: z.boolean(),
  /** off; on (always in maintenance); window (in maintenance during maintenanceWindow, Ecuador time). @default 'off' */
  maintenance: z.enum(['off', 'on', 'window']),
  /** The nightly window in Ecuador's time (UTC−5); `from` after `to` spans midnight. @default 00:00–02:00 */
  maintenanceWindow: z.object({ from: z.string().regex(HHMM), to: z.string().regex(HHMM) }).strict(),
  /** At most `requests` per client address in each `windowMs`; null = no limit. @default 600 per 60 s */
  rateLimit: z.object({ requests: z.number().int().min(1), windowMs: z.number().int().min(100).max(3_600_000) }).strict().nullable(),
  /** Rows per results page. @default SRI_PAGE_SIZE (20) */
  pageSize: z.number().int().min(1).max(500),
  /** Whether the authorisation web service answers (off: 503, as when the SRI takes it down). @default true */
  authorisationService: z.boolean(),
}).strict();
export type SriPortalSettings = z.infer<typeof SriPortalSettingsSchema>;

export const SRI_PORTAL_DEFAULTS: Readonly<SriPortalSettings> = Object.freeze({
  seed: SRI_DEFAULT_SEED,
  sessionIdleMs: 25 * 60_000,
  loginCaptchaAfterFailures: 3,
  searchCaptcha: false,
  maintenance: 'off',
  maintenanceWindow: { from: '00:00', to: '02:00' },
  rateLimit: { requests: 600, windowMs: 60_000 },
  pageSize: SRI_PAGE_SIZE,
  authorisationService: true,
});

/** What the imitation counted since it started (or since POST /__admin/sri/reset). */
export interface SriPortalStats {
  logins: number;
  failedLogins: number;
  searches: number;
  captchaRefusals: number;
  resultPages: number;
  xmlDownloads: number;
  pdfDownloads: number;
  reports: number;
  soapCalls: number;
  maintenanceAnswers: number;
  rateLimited: number;
}

export interface SriPortalControl {
  settings(): SriPortalSettings;
  /** Merges `patch` into the settings (validated); returns them. */
  configure(patch: Partial<SriPortalSettings>): SriPortalSettings;
  /** Logs every session out; returns how many. */
  expireSessions(): number;
  /** Default settings, no sessions, no failed logins or rate-limit counts, stats zeroed. */
  reset(): void;
  stats(): SriPortalStats;
  /** The documents it serves (sriDataset of its seed). */
  documents(): readonly SriGeneratedDocument[];
}

export interface SriPortalOptions {
  /** Initial settings over SRI_PORTAL_DEFAULTS. */
  readonly settings?: Partial<SriPortalSettings>;
  /** The clock (tests of the session and the maintenance window). @default Date.now */
  readonly now?: () => number;
}

interface Session { lastSeen: number; user: string; search?: SearchView }

const zeroStats = (): SriPortalStats => ({
  logins: 0, failedLogins: 0, searches: 0, captchaRefusals: 0, resultPages: 0, xmlDownloads: 0, pdfDownloads: 0,
  reports: 0, soapCalls: 0, maintenanceAnswers: 0, rateLimited: 0,
});

/** Ecuador's offset from UTC (no daylight saving). */
const ECUADOR_OFFSET_MS = -5 * 3_600_000;

export function inMaintenanceWindow(nowMs: number, w: { from: string; to: string }): boolean {
  const d = new Date(nowMs + ECUADOR_OFFSET_MS);
  const minutes = d.getUTCHours() * 60 + d.getUTCMinutes();
  const toMin = (s: string) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
  const from = toMin(w.from);
  const to = toMin(w.to);
  return from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
}

/** Registers the imitation's routes on the demo portal's app (its pages under /sri, its switches under /__admin/sri). */
export function registerSriPortal(app: FastifyInstance, opts: SriPortalOptions = {}): SriPortalControl {
  const now = opts.now ?? Date.now;
  let settings: SriPortalSettings = SriPortalSettingsSchema.parse({ ...SRI_PORTAL_DEFAULTS, ...opts.settings });
  const sessions = new Map<string, Session>();
  const failures = new Map<string, number>();
  const hits = new Map<string, { windowStart: number; count: number }>();
  let stats = zeroStats();

  const control: SriPortalControl = {
    settings: () => structuredClone(settings),
    configure: (patch) => {
      settings = SriPortalSettingsSchema.parse({ ...settings, ...patch });
      return structuredClone(settings);
    },
    expireSessions: () => {
      const n = sessions.size;
      sessions.clear();
      return n;
    },
    reset: () => {
      settings = SriPortalSettingsSchema.parse({ ...SRI_PORTAL_DEFAULTS, ...opts.settings });
      sessions.clear();
      failures.clear();
      hits.clear();
      stats = zeroStats();
    },
    stats: () => ({ ...stats }),
    documents: () => sriDataset(settings.seed),
  };

  // ── Test switches ──
  app.get('/__admin/sri/settings', async () => control.settings());
  app.post('/__admin/sri/settings', async (req, reply) => {
    const parsed = SriPortalSettingsSchema.partial().safeParse(req.body ?? {});
    if (!parsed.success) return reply.code(400).send({ error: 'invalid settings', issues: parsed.error.issues });
    return control.configure(parsed.data);
  });
  app.post('/__admin/sri/expire-sessions', async () => ({ expired: control.expireSessions() }));
  app.post('/__admin/sri/reset', async () => {
    control.reset();
    return { settings: control.settings() };
  });
  app.get('/__admin/sri/stats', async () => control.stats());
  app.get('/__admin/sri/documents', async (req) => {
    const q = z.object({
      year: z.coerce.number().int().optional(), month: z.coerce.number().int().min(1).max(12).optional(),
      type: z.enum(['factura', 'liquidacionCompra', 'notaCredito', 'notaDebito', 'retencion']).optional(),
    }).safeParse(req.query);
    const all = control.documents();
    const list = q.success && q.data.month !== undefined
      ? sriDocumentsFor(all, { year: q.data.year ?? SRI_DEFAULT_YEAR, month: q.data.month, ...(q.data.type ? { tipo: q.data.type } : {}) })
      : all.filter((d) => !q.success || q.data.type === undefined || d.tipo === q.data.type);
    return { documents: list.map(({ xml: _xml, ...d }) => d) };
  });

  const session = (req: FastifyRequest): Session | undefined => {
    const token = cookie(req, SRI_SESSION_COOKIE);
    if (token === undefined) return undefined;
    const s = sessions.get(token);
    if (!s) return undefined;
    if (now() - s.lastSeen > settings.sessionIdleMs) {
      sessions.delete(token);
      return undefined;
    }
    // A sliding session: every request of a live session renews it.
    s.lastSeen = now();
    return s;
  };
  const html = (reply: FastifyReply, status: number, title: string, body: string, user?: string) =>
    reply.code(status).type('text/html; charset=utf-8').send(sriPage(title, body, user));
  const toLogin = (reply: FastifyReply, back: string) =>
    reply.redirect(`${SRI_PATHS.login}?redirect=${encodeURIComponent(back)}`);

  const documentsOf = (search: SearchView) => {
    const tipo = TIPO_OPTIONS.find((t) => t.value === search.tipo)?.tipo;
    if (tipo === undefined) return [];
    return sriDocumentsFor(control.documents(), { year: search.ano, month: search.mes, day: search.dia, tipo });
  };

  app.register(async (scope) => {
    // SOAP clients post text/xml (SOAP 1.1) or application/soap+xml (1.2).
    scope.addContentTypeParser(['text/xml', 'application/xml', 'application/soap+xml'], { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
      done(null, body);
    });

    // Maintenance first (the portal answers nothing else then), then the rate limit.
    scope.addHook('onRequest', async (req, reply) => {
      const maintenance = settings.maintenance === 'on'
        || (settings.maintenance === 'window' && inMaintenanceWindow(now(), settings.maintenanceWindow));
      if (maintenance) {
        stats.maintenanceAnswers++;
        return reply.code(503).header('retry-after', '3600').type('text/html; charset=utf-8')
          .send(sriPage('Sistema en mantenimiento', MAINTENANCE_BODY));
      }
      const limit = settings.rateLimit;
      if (limit) {
        const t = now();
        const h = hits.get(req.ip);
        const current = h && t - h.windowStart < limit.windowMs ? h : { windowStart: t, count: 0 };
        current.count++;
        hits.set(req.ip, current);
        if (current.count > limit.requests) {
          stats.rateLimited++;
          const retryAfter = Math.max(1, Math.ceil((current.windowStart + limit.windowMs - t) / 1000));
          return reply.code(429).header('retry-after', String(retryAfter)).type('text/html; charset=utf-8')
            .send(sriPage('Demasiadas solicitudes', RATE_LIMIT_BODY));
        }
      }
      return undefined;
    });

    scope.get('/', async (req, reply) => reply.redirect(session(req) ? SRI_PATHS.home : SRI_PATHS.login));

    // ── Login ──
    // Failed logins are counted per client address, so the login page itself knows to show the CAPTCHA.
    const loginCaptcha = (ip: string) =>
      settings.loginCaptchaAfterFailures > 0 && (failures.get(ip) ?? 0) >= settings.loginCaptchaAfterFailures;
    scope.get('/auth/login', async (req, reply) => {
      const redirect = String((req.query as Record<string, unknown>)['redirect'] ?? '');
      const captcha = loginCaptcha(req.ip) ? captchaWidget(SRI_CAPTCHA_SITE_KEY, false) : undefined;
      return html(reply, 200, 'Inicio de sesión', loginForm({ redirect, ...(captcha ? { captcha } : {}) }));
    });
    scope.post('/auth/login', async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string).trim() : '');
      const usuario = str('usuario');
      const ci = str('ciAdicional');
      const redirect = safeRedirect(str('redirect'));
      const again = (error: string) => {
        const captcha = loginCaptcha(req.ip) ? captchaWidget(SRI_CAPTCHA_SITE_KEY, false) : undefined;
        return html(reply, 200, 'Inicio de sesión', loginForm({ error, redirect, ...(captcha ? { captcha } : {}) }));
      };
      if (loginCaptcha(req.ip) && !captchaPassed(body)) {
        stats.captchaRefusals++;
        return again('Complete la verificación de seguridad (captcha) para continuar.');
      }
      const known = usuario === SRI_DEMO_RUC || usuario === SRI_DEMO_CEDULA;
      // The additional CI is optional; given, it is a cédula of ten digits.
      const ciOk = ci === '' || /^\d{10}$/.test(ci);
      if (!known || str('password') !== SRI_DEMO_PASSWORD || !ciOk) {
        stats.failedLogins++;
        failures.set(req.ip, (failures.get(req.ip) ?? 0) + 1);
        return again(!ciOk ? 'La C.I. adicional no es válida.' : 'Usuario o contraseña incorrectos.');
      }
      failures.delete(req.ip);
      stats.logins++;
      const token = randomBytes(24).toString('hex');
      sessions.set(token, { lastSeen: now(), user: usuario });
      reply.header('set-cookie', `${SRI_SESSION_COOKIE}=${token}; Path=${SRI_PREFIX}; HttpOnly; SameSite=Lax`);
      return reply.redirect(redirect ?? SRI_PATHS.home, 303);
    });
    scope.post('/auth/logout', async (req, reply) => {
      const token = cookie(req, SRI_SESSION_COOKIE);
      if (token) sessions.delete(token);
      reply.header('set-cookie', `${SRI_SESSION_COOKIE}=; Path=${SRI_PREFIX}; HttpOnly; Max-Age=0`);
      return reply.redirect(SRI_PATHS.login, 303);
    });

    scope.get('/sri-en-linea/inicio', async (req, reply) => {
      const s = session(req);
      if (!s) return toLogin(reply, SRI_PATHS.home);
      return html(reply, 200, 'SRI en línea', homePage(SRI_DEMO_RECEPTOR.razonSocial, SRI_PATHS.recibidos), s.user);
    });

    // ── Comprobantes electrónicos recibidos ──
    const recibidos = SRI_PATHS.recibidos.slice(SRI_PREFIX.length);
    const render = (reply: FastifyReply, s: Session, page: number | undefined, error?: string, status = 200) => {
      const years = Array.from({ length: 6 }, (_, i) => SRI_DEFAULT_YEAR - 4 + i);
      const search = s.search ?? { ano: SRI_DEFAULT_YEAR, mes: 1, dia: 0, tipo: '1' };
      let results;
      if (s.search && page !== undefined) {
        const docs = documentsOf(s.search);
        const pages = Math.max(1, Math.ceil(docs.length / settings.pageSize));
        const p = Math.min(Math.max(1, page), pages);
        results = { docs: docs.slice((p - 1) * settings.pageSize, p * settings.pageSize), page: p, pages, total: docs.length, pageSize: settings.pageSize };
        stats.resultPages++;
      }
      return html(reply, status, 'Comprobantes electrónicos recibidos', recibidosPage({
        action: SRI_PATHS.recibidos, search, years,
        ...(settings.searchCaptcha ? { captcha: captchaWidget(SRI_CAPTCHA_SITE_KEY, true) } : {}),
        ...(error ? { error } : {}),
        ...(results ? { results } : {}),
        downloadUrl: (tipo, clave) => `${SRI_PATHS.descarga}?tipo=${tipo}&clave=${clave}`,
        reportUrl: SRI_PATHS.reporte,
      }), s.user);
    };
    scope.get(recibidos, async (req, reply) => {
      const s = session(req);
      if (!s) return toLogin(reply, SRI_PATHS.recibidos);
      const pagina = Number((req.query as Record<string, unknown>)['pagina']);
      return render(reply, s, Number.isInteger(pagina) && pagina > 0 ? pagina : undefined);
    });
    scope.post(recibidos, async (req, reply) => {
      const s = session(req);
      if (!s) return toLogin(reply, SRI_PATHS.recibidos);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const parsed = SearchBody.safeParse(body);
      if (!parsed.success) return render(reply, s, undefined, 'Parámetros de consulta no válidos.', 400);
      if (settings.searchCaptcha && !captchaPassed(body)) {
        stats.captchaRefusals++;
        return render(reply, s, undefined, 'Captcha incorrecta. Por favor, intente nuevamente.');
      }
      stats.searches++;
      s.search = { ano: parsed.data.ano, mes: parsed.data.mes, dia: parsed.data.dia, tipo: parsed.data.cmbTipoComprobante };
      return reply.redirect(`${SRI_PATHS.recibidos}?pagina=1`, 303);
    });

    scope.get(SRI_PATHS.descarga.slice(SRI_PREFIX.length), async (req, reply) => {
      const s = session(req);
      if (!s) return toLogin(reply, SRI_PATHS.recibidos);
      const q = req.query as Record<string, unknown>;
      const doc = control.documents().find((d) => d.claveAcceso === q['clave']);
      if (!doc) return html(reply, 404, 'Comprobante no encontrado', '<p id="no-encontrado">El comprobante solicitado no existe.</p>', s.user);
      if (q['tipo'] === 'pdf') {
        stats.pdfDownloads++;
        return reply.code(200).header('content-type', 'application/pdf')
          .header('content-disposition', `attachment; filename="${doc.claveAcceso}.pdf"`).send(ridePdf(doc));
      }
      stats.xmlDownloads++;
      return reply.code(200).header('content-type', 'application/xml; charset=utf-8')
        .header('content-disposition', `attachment; filename="${doc.claveAcceso}.xml"`).send(authorisationXml(doc));
    });

    scope.get(SRI_PATHS.reporte.slice(SRI_PREFIX.length), async (req, reply) => {
      const s = session(req);
      if (!s) return toLogin(reply, SRI_PATHS.recibidos);
      if (!s.search) return html(reply, 409, 'Sin consulta', '<p id="sin-consulta">Realice primero una consulta.</p>', s.user);
      stats.reports++;
      const { ano, mes } = s.search;
      return reply.code(200).header('content-type', 'text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="${SRI_DEMO_RUC}_Recibidos_${ano}${String(mes).padStart(2, '0')}.txt"`)
        .send(reportTxt(documentsOf(s.search), SRI_DEMO_RUC));
    });

    // ── The authorisation web service (public, as the real one) ──
    const ws = SRI_PATHS.autorizacion.slice(SRI_PREFIX.length);
    scope.get(ws, async (req, reply) => {
      const origin = `${req.protocol}://${req.headers.host ?? req.hostname}`;
      return reply.type('text/xml; charset=utf-8').send(wsdl(`${origin}${SRI_PATHS.autorizacion}`));
    });
    scope.post(ws, async (req, reply) => {
      if (!settings.authorisationService) {
        return reply.code(503).type('text/xml; charset=utf-8').send(soapFault('Servicio no disponible temporalmente'));
      }
      stats.soapCalls++;
      const body = typeof req.body === 'string' ? req.body : '';
      const m = /<(?:[\w-]+:)?claveAccesoComprobante>\s*([^<\s]*)\s*<\/(?:[\w-]+:)?claveAccesoComprobante>/.exec(body);
      if (!m) {
        return reply.code(500).type('text/xml; charset=utf-8')
          .send(soapFault('Se esperaba autorizacionComprobante con claveAccesoComprobante'));
      }
      const clave = m[1]!;
      const doc = control.documents().find((d) => d.claveAcceso === clave);
      return reply.code(200).type('text/xml; charset=utf-8').send(soapAuthorisation(clave.replace(/\D/g, ''), doc));
    });
  }, { prefix: SRI_PREFIX });

  return control;
}

const SearchBody = z.object({
  ano: z.coerce.number().int().min(2000).max(2100),
  mes: z.coerce.number().int().min(1).max(12),
  dia: z.coerce.number().int().min(0).max(31),
  cmbTipoComprobante: z.enum(TIPO_OPTIONS.map((t) => t.value) as [string, ...string[]]),
});

/** The widget's token (what a solver injects) or a person's typed answer. */
function captchaPassed(body: Record<string, unknown>): boolean {
  const token = body['g-recaptcha-response'];
  const answer = body['answer'];
  return token === SRI_CAPTCHA_TOKEN || (typeof answer === 'string' && answer.trim().toLowerCase() === CAPTCHA_ANSWER);
}

/** Only a path of the imitation itself (no open redirect). */
function safeRedirect(s: string): string | undefined {
  return s.startsWith(`${SRI_PREFIX}/`) && !s.startsWith('//') && !/[\r\n\\]/.test(s) ? s : undefined;
}

function cookie(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
