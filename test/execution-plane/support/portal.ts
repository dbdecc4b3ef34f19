/**
 * A tiny portal for worker tests on 127.0.0.1 (random port): a login form that checks a password and sets the
 * session cookie, an invoice table and a PDF download behind that cookie, plus probes for cookie leaks, slow pages
 * and blocked hosts. It records every request (path and Host header).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface TestPortal {
  readonly url: string;
  readonly port: number;
  /** Value of the `sid` cookie the portal accepts. */
  readonly sessionId: string;
  readonly password: string;
  /** The bytes /invoice.pdf serves. */
  readonly pdf: Buffer;
  readonly requests: { path: string; host: string }[];
  /** Answers every request to /hold that is waiting (they wait until this is called). */
  releaseHolds(): void;
  close(): Promise<void>;
}

function cookiesOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

const page = (title: string, body: string) => `<!doctype html><html><head><title>${title}</title></head><body>${body}</body></html>`;

export async function startTestPortal(): Promise<TestPortal> {
  const sessionId = `sid-${randomBytes(12).toString('hex')}`;
  const password = `pw-${randomBytes(9).toString('hex')}`;
  const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n% test invoice\n'), randomBytes(20_000), Buffer.from('\n%%EOF\n')]);
  const requests: { path: string; host: string }[] = [];
  let port = 0;
  const holds: (() => void)[] = [];

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push({ path: url.pathname, host: req.headers.host ?? '' });
    const loggedIn = cookiesOf(req)['sid'] === sessionId;
    const html = (status: number, body: string, headers: Record<string, string | string[]> = {}) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(body);
    };
    switch (url.pathname) {
      case '/hold':
        holds.push(() => html(200, page('Released', '<p id="released">go on</p>')));
        return;
      case '/login':
        if (req.method === 'POST') {
          let body = '';
          req.on('data', (d: Buffer) => { body += d.toString(); });
          req.on('end', () => {
            const form = new URLSearchParams(body);
            if (form.get('password') === password) {
              html(303, '', { location: '/invoices', 'set-cookie': `sid=${sessionId}; Path=/; HttpOnly` });
            } else {
              html(401, page('Login failed', '<h1 id="login-failed">Wrong password</h1>'));
            }
          });
          return;
        }
        return html(200, page('Login', '<form method="post" action="/login"><input id="user" name="user"><input id="password" name="password" type="password"><button id="submit" type="submit">Log in</button></form>'));
      case '/invoices':
        if (!loggedIn) return html(401, page('Login required', '<h1 id="login-required">Please log in</h1>'));
        return html(200, page('Invoices', `<h1>Invoices</h1><table id="invoices"><thead><tr><th>Number</th><th>Total</th></tr></thead><tbody>
          <tr data-id="1"><td class="number"> F-001 </td><td class="total">10.50</td><td><a href="/invoice.pdf?n=1">pdf</a></td></tr>
          <tr data-id="2"><td class="number">F-002</td><td class="total">99.00</td><td><a href="/invoice.pdf?n=2">pdf</a></td></tr>
          </tbody></table><a id="pdf" href="/invoice.pdf">Download PDF</a>`));
      case '/invoice.pdf':
        if (!loggedIn) return html(401, page('Login required', 'no'));
        res.writeHead(200, { 'content-type': 'application/pdf', 'content-disposition': 'attachment; filename="Factura 2024/001 (copia).pdf"', 'content-length': pdf.length });
        return res.end(pdf);
      case '/set-cookie':
        return html(200, page('Set', '<p id="set">ok</p>'), { 'set-cookie': `${url.searchParams.get('name')}=${url.searchParams.get('value')}; Path=/` });
      case '/cookies':
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end(`cookies:${req.headers.cookie ?? ''}`);
      case '/slow': {
        const t = setTimeout(() => html(200, page('Slow', '<p id="slow">done</p>')), Number(url.searchParams.get('ms') ?? 1000));
        res.on('close', () => clearTimeout(t));
        return;
      }
      case '/pixel-page':
        return html(200, page('Pixel', `<p id="pixel">page</p><img src="http://localhost:${port}/pixel.png"><img src="http://127.0.0.1:${port}/pixel.png">`));
      case '/redirect':
        res.writeHead(302, { location: url.searchParams.get('to') ?? '/' });
        return res.end();
      case '/pixel.png':
        res.writeHead(204);
        return res.end();
      default:
        return html(404, page('Not found', 'not found'));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`, port, sessionId, password, pdf, requests,
    releaseHolds: () => { for (const h of holds.splice(0)) h(); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
