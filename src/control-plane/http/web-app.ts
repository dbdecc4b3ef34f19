/**
 * Serves the dashboard (src/web, built by Vite into dist/web) at `/` on the API's own origin (docs/dashboard.md):
 *
 * - `/assets/*`: the bundle's hashed files, cached for a year as immutable (a new build has new names).
 * - any other GET that is not the API's (`/api`, `/docs`, `/health`, `/ready`, `/metrics`): the app's index.html —
 *   the client routes (`/jobs/…`, `/flows`) are the app's to resolve — with `cache-control: no-cache`, so a new
 *   build is picked up at the next load, and the app's strict Content-Security-Policy: scripts, styles, fonts and
 *   connections from this origin only, no inline script or style element, images also from the S3 endpoint that
 *   serves screenshot links.
 *
 * Paths of the API that match no route keep their JSON ROUTE_NOT_FOUND answer; the app never shadows them.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/**
 * Where the built dashboard is: dist/web of a checkout (running the sources, `npm start`), or web/ next to src/ in
 * a build (`npm run build`: this file is dist/src/control-plane/http/web-app.js, so its project root is dist/).
 */
export const WEB_DIST_DIR = import.meta.url.endsWith('.js') ? join(PROJECT_ROOT, 'web') : join(PROJECT_ROOT, 'dist', 'web');

/** First path segments that belong to the API, never to the app. */
const API_PREFIXES = ['api', 'docs', 'health', 'ready', 'metrics'];

export function isApiPath(url: string): boolean {
  const first = url.split('?')[0]!.split('/')[1] ?? '';
  return API_PREFIXES.includes(first);
}

/**
 * The app's Content-Security-Policy. `img-src` also allows `imageOrigins` (the S3 endpoint of presigned screenshot
 * links) and `data:` (nothing else), `media-src` the same origins (a job's recorded video); `style-src 'self'` forbids <style> elements and style="" attributes in markup —
 * React sets styles through the DOM's style property, which CSP does not restrict.
 */
export function appCsp(imageOrigins: readonly string[] = []): string {
  return [
    "default-src 'self'", "script-src 'self'", "style-src 'self'", `img-src 'self' data: ${imageOrigins.join(' ')}`.trim(),
    // The job page plays a recorded video.webm from the same presigned links (docs/scripts.md "Recordings").
    `media-src 'self' ${imageOrigins.join(' ')}`.trim(),
    "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
  ].join('; ');
}

export interface WebAppOptions {
  /** The built app (index.html, assets/). @default WEB_DIST_DIR */
  dir?: string;
  /** Origins images may come from besides the app's own (the S3 endpoint of artifact links). */
  imageOrigins?: readonly string[];
}

export async function installWebApp(app: FastifyInstance, opts: WebAppOptions = {}): Promise<void> {
  const dir = opts.dir ?? WEB_DIST_DIR;
  const csp = appCsp(opts.imageOrigins);
  const built = existsSync(join(dir, 'index.html'));
  if (built) {
    await app.register(fastifyStatic, {
      root: join(dir, 'assets'), prefix: '/assets/', immutable: true, maxAge: '365d', index: false, schemaHide: true,
    });
  }

  const page = async (req: FastifyRequest, reply: FastifyReply) => {
    if (isApiPath(req.url)) return reply.callNotFound();
    if (!built) {
      // Said where a person looks: in the browser, with the command that fixes it.
      return reply.status(503).type('text/plain; charset=utf-8')
        .send(`The dashboard is not built (no ${join(dir, 'index.html')}). Run "npm run build", or "npm start", which builds it when it is missing.\n`);
    }
    return reply.header('content-security-policy', csp).header('cache-control', 'no-cache')
      .sendFile('index.html', dir, { cacheControl: false });
  };
  app.get('/', { schema: { hide: true } }, page);
  app.get('/*', { schema: { hide: true } }, page);
}
