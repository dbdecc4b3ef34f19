/**
 * The dashboard's jobs filters, members and admin pages as people use them, in Chromium (playwright-core), in
 * English from an en-US browser, against a real API (redis-server, s3rver, PGlite, the built app) without workers:
 * jobs stay where the test puts them, so each journey sees exactly what it set up.
 *
 * - An admin narrows the jobs list by status, provider and days; the filters live in the URL (a reload keeps them).
 * - An admin invites a member by link; the member opens it in their own browser, chooses a password, logs in, sees no
 *   admin pages; the admin removes them, and the member's very next request sends them to the login page.
 * - An admin looks at a dead letter and requeues it from the page; the job is back in the queue; the rest are purged.
 * - An admin makes a member an admin and back; the last admin cannot step down.
 * - Webhooks (a delivery to a local receiver listed with its answer), secrets, quota and workers pages work (each worker with its script sandbox), and every page passes axe-core with no serious or critical
 *   violation, breaks no CSP rule and throws no error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { writeHeartbeat } from '../../src/shared/worker-registry.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const SLOW = { timeout: 60_000 };
const ADMIN_PASSWORD = 'correct-horse-42';
const MEMBER_PASSWORD = 'juniper-quartz-meadow-71';

describe('jobs filters, members and admin pages, in Chromium', () => {
  let t: TestApi;
  let browser: Browser;
  let admin: WatchedPage;
  let page: Page;
  let org: TestOrg;
  let adminEmail = '';
  const jobs: string[] = [];

  const heading = (p: Page, name: string | RegExp) => p.getByRole('heading', { level: 1, name });
  const see = (p: Page, text: string | RegExp) => p.getByText(text).first().waitFor(SLOW);
  async function checkPage(w: WatchedPage, what: string) {
    await checkAccessibility(w.page, what);
    assertNoProblems(w, what);
  }
  async function logIn(p: Page, email: string, password: string) {
    await p.goto('/login');
    await heading(p, 'Log in').waitFor(SLOW);
    await p.getByLabel('E-mail').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Log in' }).click();
    await heading(p, 'Jobs').waitFor(SLOW);
  }
  /** The ids of the jobs the list shows, by their "Open job …" links. */
  const listedJobs = async () => {
    const labels = await page.getByRole('link', { name: /^Open job / }).evaluateAll((links) => links.map((l) => l.getAttribute('aria-label') ?? ''));
    return labels.map((l) => l.replace('Open job ', '')).sort();
  };

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SECRETS_KEYS: `k1:${randomBytes(32).toString('base64')}`, AUTH_USER_CACHE_MS: '600000', WEBHOOK_ALLOW_PRIVATE: 'true' });
    org = await t.createOrg();
    adminEmail = (await (await fetch(`${t.api.url}/api/me`, { headers: { authorization: `Bearer ${org.token}` } })).json() as { user: { email: string } }).user.email;
    await t.db.asSystem((tx) => tx.query(`INSERT INTO providers (id, name, display_name, allowed_hosts)
      VALUES ('other', 'other', 'Other portal', '["other.example"]') ON CONFLICT (id) DO NOTHING`));
    for (let i = 0; i < 5; i++) jobs.push(await t.runJob(org));
    // Queued (no worker runs here), then placed: statuses, providers and days of their own.
    const shape: [string, string, string][] = [
      ['done', 'demo', '2026-01-05T15:00:00Z'], ['failed', 'demo', '2026-01-10T15:00:00Z'], ['failed', 'other', '2026-01-20T15:00:00Z'],
      ['done', 'other', '2026-02-03T15:00:00Z'], ['dead', 'demo', '2026-02-10T15:00:00Z'],
    ];
    await t.db.withOrg(org.orgId, async (tx) => {
      for (const [i, [status, provider, created]] of shape.entries()) {
        await tx.query('UPDATE jobs SET status = $2, provider_id = $3, created_at = $4::timestamptz, finished_at = $4::timestamptz WHERE id = $1',
          [jobs[i], status, provider, created]);
      }
    });
    browser = await launchChromium();
    admin = await openPage(browser, { locale: 'en-US', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    page = admin.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('narrows the jobs list by status, provider and days, keeping the filters in the URL', async () => {
    await logIn(page, adminEmail, ADMIN_PASSWORD);
    await see(page, '5 jobs');
    assert.deepEqual(await listedJobs(), [...jobs].sort());
    await checkPage(admin, 'jobs, unfiltered');

    const filters = page.getByRole('form', { name: 'Filters' });
    await filters.getByLabel('failed').check();
    await see(page, '2 jobs');
    assert.deepEqual(await listedJobs(), [jobs[1], jobs[2]].sort());
    assert.match(page.url(), /status=failed/);
    await filters.getByLabel('dead').check();
    await see(page, '3 jobs');

    await filters.getByLabel('Provider').selectOption({ label: 'Other portal' });
    await see(page, '1 job');
    assert.deepEqual(await listedJobs(), [jobs[2]]);
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Open job ${jobs[2]}` }) });
    const cells = await row.getByRole('cell').allTextContents();
    assert.deepEqual([cells[1], cells[2], cells[4]], ['failed', 'Other portal', 'User'], 'status, provider and user');

    // Reloaded, the filtered view is the same; the statuses go, the provider stays.
    await page.reload();
    await see(page, '1 job');
    assert.equal(await filters.getByLabel('failed').isChecked(), true);
    await filters.getByLabel('failed').uncheck();
    await filters.getByLabel('dead').uncheck();
    await see(page, '2 jobs');

    // Days in the user's time zone, both included: January holds one job of the other portal.
    await filters.getByLabel('Provider').selectOption({ label: 'Any provider' });
    await filters.getByLabel('From', { exact: true }).fill('2026-01-10');
    await filters.getByLabel('To', { exact: true }).fill('2026-01-20');
    await see(page, '2 jobs');
    assert.deepEqual(await listedJobs(), [jobs[1], jobs[2]].sort());
    assert.match(page.url(), /from=2026-01-10&to=2026-01-20|to=2026-01-20.*from=2026-01-10|from=2026-01-10.*to=2026-01-20/);
    await checkPage(admin, 'jobs, filtered by days');

    await filters.getByLabel('From', { exact: true }).fill('2027-01-01');
    await filters.getByLabel('To', { exact: true }).fill('2027-01-31');
    await see(page, 'No job matches these filters.');
    await page.getByRole('link', { name: 'Clear filters' }).click();
    await see(page, '5 jobs');
    assert.doesNotMatch(page.url(), /from=|status=/);
  });

  let inviteUrl = '';
  const memberEmail = `bea-${randomUUID()}@example.com`;

  it('adds a member with an invitation link, shown once', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members' }).click();
    await heading(page, 'Members').waitFor(SLOW);
    await checkPage(admin, 'members');
    const form = page.getByRole('form', { name: 'Add a member' });
    await form.getByLabel('Name').fill('Bea Ruiz');
    await form.getByLabel('E-mail').fill(memberEmail);
    await form.getByRole('button', { name: 'Add member' }).click();
    await see(page, 'Bea Ruiz was added.');
    const link = page.getByRole('region', { name: 'Invitation link for Bea Ruiz' }).getByLabel('Invitation link');
    inviteUrl = await link.inputValue();
    assert.match(inviteUrl, new RegExp(`^${t.api.url}/invitation#[A-Za-z0-9_-]{43}$`));
    // "Send by e-mail" opens the admin's mail program with the member's address and the link in the message.
    const mail = new URL(await page.getByRole('link', { name: 'Send by e-mail' }).getAttribute('href') ?? '');
    assert.equal(mail.protocol, 'mailto:');
    assert.equal(decodeURIComponent(mail.pathname), memberEmail);
    assert.ok(mail.searchParams.get('subject'));
    assert.ok(mail.searchParams.get('body')?.includes(inviteUrl), 'the e-mail body carries the invitation link');
    const row = page.getByRole('row').filter({ hasText: memberEmail });
    await row.getByText(/^invited \(link valid until /).waitFor(SLOW);
    await checkPage(admin, 'members, invitation shown');
  });

  let member: WatchedPage;

  it('lets the invited member choose a password and log in as a member, without the admin pages', async () => {
    member = await openPage(browser, { locale: 'en-US', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    const p = member.page;
    await p.goto(inviteUrl);
    await heading(p, 'Join your organisation').waitFor(SLOW);
    await checkPage(member, 'invitation');
    await p.getByLabel('Password').fill('bea12345');
    await p.getByRole('button', { name: 'Accept invitation' }).click();
    await see(p, /This password is too weak/);
    await p.getByLabel('Password').fill(MEMBER_PASSWORD);
    await p.getByRole('button', { name: 'Accept invitation' }).click();
    await see(p, new RegExp(`Welcome, Bea Ruiz: you are a member of .*\\. Log in with ${memberEmail.replace(/[.]/g, '\\.')}`));
    await p.getByRole('link', { name: 'Log in' }).click();
    await heading(p, 'Log in').waitFor(SLOW);
    assert.equal(await p.getByLabel('E-mail').inputValue(), memberEmail, 'the e-mail is filled in');
    await p.getByLabel('Password').fill(MEMBER_PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await heading(p, 'Jobs').waitFor(SLOW);
    await see(p, 'Signed in as Bea Ruiz');
    const nav = p.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Members' }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'Admin' }).count(), 0);
    await p.goto('/admin/dead-letters');
    await see(p, 'This page is for your organisation\'s administrators.');
    await checkPage(member, 'admin page seen by a member');
    // The admin's list shows her active now.
    await page.reload();
    await page.getByRole('row').filter({ hasText: memberEmail }).getByText('active', { exact: true }).waitFor(SLOW);
  });

  it('removes the member: her next request sends her to the login page, and her session is refused', async () => {
    const row = page.getByRole('row').filter({ hasText: memberEmail });
    await row.getByRole('button', { name: 'Remove Bea Ruiz' }).click();
    await row.getByRole('button', { name: 'Yes, remove' }).click();
    await see(page, 'Bea Ruiz was removed.');
    await page.getByRole('row').filter({ hasText: memberEmail }).waitFor({ state: 'detached', ...SLOW });

    const p = member.page;
    const cookie = (await member.context.cookies()).find((c) => c.name === 'sri_session');
    assert.ok(cookie, 'she still holds her session cookie');
    const refused = await fetch(`${t.api.url}/api/session`, { headers: { cookie: `sri_session=${cookie.value}` } });
    assert.equal(refused.status, 401, 'her session is refused at once');
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Providers' }).click();
    await p.waitForURL(/\/login\?next=%2Fproviders&expired=1/, SLOW);
    await see(p, 'Your session has ended. Log in again');
    await p.getByLabel('E-mail').fill(memberEmail);
    await p.getByLabel('Password').fill(MEMBER_PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await see(p, 'E-mail or password is wrong.');
    assertNoProblems(member, 'removed member');
    await member.context.close();
  });

  it('shows a dead letter and requeues it from the page (the job is back in the queue), then purges the rest after a confirmation', async () => {
    const queue = await JobQueue.connect(t.redis);
    const jobId = await t.runJob(org);
    const raw = (await t.redis.lrange(keys.orgJobs(org.orgId), 0, -1)).find((m) => JSON.parse(m).jobId === jobId);
    assert.ok(raw, 'the job\'s message is queued');
    await t.redis.lrem(keys.orgJobs(org.orgId), 0, raw);
    await queue.deadLetter(org.orgId, raw, 'worker lost on every attempt (test)', jobId);
    await waitFor(async () => (await t.db.withOrg(org.orgId, (tx) => tx.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [jobId])))[0]?.status === 'dead',
      { what: 'the job recorded dead' });

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await heading(page, 'Dead letters').waitFor(SLOW);
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: jobId.slice(0, 8) }) });
    await row.getByText('worker lost on every attempt (test)').waitFor(SLOW);
    await checkPage(admin, 'dead letters');
    await row.getByRole('button', { name: `Show dead letter ${jobId.slice(0, 8)}` }).click();
    await page.getByRole('region', { name: /^Message of dead letter/ }).getByText(jobId).waitFor(SLOW);
    await checkPage(admin, 'dead letter shown');
    await row.getByRole('button', { name: `Requeue dead letter ${jobId}` }).click();
    await see(page, `Dead letter ${jobId} is back in the queue.`);
    await see(page, 'No dead letters: every job your organisation pushed could be run.');
    const queued = await t.redis.lrange(keys.orgJobs(org.orgId), 0, -1);
    assert.ok(queued.some((m) => JSON.parse(m).jobId === jobId), 'the job is in its organisation\'s queue again');
    const [rec] = await t.db.withOrg(org.orgId, (tx) => tx.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [jobId]));
    assert.equal(rec!.status, 'queued');

    // Two more, purged together after a confirmation; another organisation's dead letter is not touched.
    const other = await t.createOrg();
    const othersEntry = await queue.deadLetter(other.orgId, '{"not":"a job"}', 'malformed (other organisation)');
    await queue.deadLetter(org.orgId, '{"not":"a job"}', 'malformed (test 1)');
    await queue.deadLetter(org.orgId, '{"not":"a job either"}', 'malformed (test 2)');
    await page.reload();
    await see(page, 'malformed (test 2)');
    await page.getByRole('button', { name: 'Purge all' }).click();
    const confirm = page.getByRole('group', { name: /^Delete every dead letter of your organisation\?/ });
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Yes, purge', 'the confirming button takes focus');
    await confirm.getByRole('button', { name: 'Yes, purge' }).click();
    await see(page, '2 dead letters purged.');
    await see(page, 'No dead letters: every job your organisation pushed could be run.');
    assert.ok(await queue.dlqGet(othersEntry), 'the other organisation\'s dead letter is still there');
  });

  it('makes a member an admin and back from the members page', async () => {
    const e = `carl-${randomUUID()}@example.com`;
    const created = await fetch(`${t.api.url}/api/members`, {
      method: 'POST', headers: { authorization: `Bearer ${org.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: e, name: 'Carl Vega', password: MEMBER_PASSWORD }),
    });
    assert.equal(created.status, 201);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members' }).click();
    await heading(page, 'Members').waitFor(SLOW);
    const row = page.getByRole('row').filter({ hasText: e });
    await row.getByRole('button', { name: 'Make Carl Vega an admin' }).click();
    await see(page, 'Carl Vega is now admin.');
    await row.getByRole('cell', { name: 'admin', exact: true }).waitFor(SLOW);
    await row.getByRole('button', { name: 'Make Carl Vega a member' }).click();
    await see(page, 'Carl Vega is now member.');
    await row.getByRole('cell', { name: 'member', exact: true }).waitFor(SLOW);
    // The last admin cannot step down: the API's refusal, in the user's words.
    const me = page.getByRole('row').filter({ hasText: adminEmail });
    await me.getByRole('button', { name: 'Make User a member' }).click();
    await see(page, 'Your organisation needs an administrator: make another member an admin first.');
    await checkPage(admin, 'members, role changes');
  });

  it('adds a webhook (its secret shown once), stores a secret (never shown back), saves the quota, lists the workers', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await heading(page, 'Dead letters').waitFor(SLOW);
    const adminNav = page.getByRole('navigation', { name: 'Administration' });
    await adminNav.getByRole('link', { name: 'Webhooks' }).click();
    await heading(page, 'Webhooks').waitFor(SLOW);
    await see(page, 'No webhooks yet.');
    const wh = page.getByRole('form', { name: 'Add a webhook' });
    await wh.getByLabel('URL').fill('https://hooks.example.com/sri');
    await wh.getByRole('button', { name: 'Add webhook' }).click();
    await page.getByRole('region', { name: 'Signing secret' }).getByText(/^whsec_/).waitFor(SLOW);
    await page.getByRole('button', { name: 'Deliveries' }).click();
    await see(page, 'No deliveries yet.');
    await checkPage(admin, 'webhooks');

    // A receiver of the organisation's own, and a job that finishes: its delivery is listed with the receiver's answer.
    const received: string[] = [];
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => { received.push(String(req.headers['webhook-id'] ?? '')); res.writeHead(204).end(); });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/sri`;
      await wh.getByLabel('URL').fill(hookUrl);
      await wh.getByRole('button', { name: 'Add webhook' }).click();
      const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: hookUrl }) });
      await card.waitFor(SLOW);
      const finished = await t.runJob(org);
      await t.redis.publish(keys.orgDone(org.orgId), JSON.stringify({
        jobId: finished, orgId: org.orgId, userId: org.userId, providerId: 'demo', success: true, status: 'done', duration: 1200,
        attempt: 1, workerId: 'worker-admin-test', finishedAt: new Date().toISOString(), files: { log: '', screenshots: [] },
      }));
      await waitFor(() => received.length > 0 || undefined, { what: 'the webhook delivery' });
      await page.reload();
      await heading(page, 'Webhooks').waitFor(SLOW);
      await card.getByRole('button', { name: 'Deliveries' }).click();
      const deliveries = page.getByRole('region', { name: `Deliveries of ${hookUrl}` });
      const row = deliveries.getByRole('row').filter({ hasText: finished.slice(0, 8) });
      await row.getByText('job.done').waitFor(SLOW);
      await row.getByText('Delivered', { exact: true }).waitFor(SLOW);
      await row.getByText('204').waitFor(SLOW);
      await checkPage(admin, 'webhooks, a delivery listed');
    } finally {
      receiver.close();
    }

    await adminNav.getByRole('link', { name: 'Secrets' }).click();
    await heading(page, 'Secrets').waitFor(SLOW);
    const sf = page.getByRole('form', { name: 'Store a secret' });
    await sf.getByLabel('Name').fill('portalPassword');
    await sf.getByLabel('Value').fill('s3cret-value-never-shown');
    await sf.getByRole('button', { name: 'Store secret' }).click();
    await see(page, 'Secret portalPassword stored.');
    await page.getByRole('cell', { name: 'portalPassword', exact: true }).waitFor(SLOW);
    assert.ok(!(await page.content()).includes('s3cret-value-never-shown'), 'the value is not in the page');
    await checkPage(admin, 'secrets');

    await adminNav.getByRole('link', { name: 'Quota' }).click();
    await heading(page, 'Quota').waitFor(SLOW);
    await page.getByLabel('Jobs running at once').fill('3');
    await page.getByRole('button', { name: 'Save quota' }).click();
    await see(page, 'Quota saved.');
    assert.deepEqual(await (await JobQueue.connect(t.redis)).getQuota(org.orgId), { maxConcurrent: 3, perMinute: null });
    await checkPage(admin, 'quota');

    await writeHeartbeat(t.redis, {
      workerId: 'worker-admin-test', state: 'ready', host: 'test', pid: 1, startedAt: Date.now(), heartbeatIntervalMs: 10_000, maxJobs: 2, jobsInFlight: 0,
      sandbox: 'sandbox-process',
    }, 300);
    await adminNav.getByRole('link', { name: 'Workers' }).click();
    await heading(page, 'Workers').waitFor(SLOW);
    const w = page.getByRole('row').filter({ hasText: 'worker-admin-test' });
    await w.waitFor(SLOW);
    const cells = await w.getByRole('cell').allTextContents();
    assert.equal(cells[1], 'ready');
    assert.match(cells[2] ?? '', /^\d+ s ago$/);
    assert.equal(cells[6], 'process only (weaker)', 'how the worker isolates scripts, in words');
    await checkPage(admin, 'workers');
  });
  it('fits the members and admin pages and the filtered jobs list on a phone without sideways scrolling', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/jobs?status=failed&provider=demo&from=2026-01-01&to=2026-12-31', '/members', '/admin/dead-letters', '/admin/webhooks',
      '/admin/secrets', '/admin/quota', '/admin/workers']) {
      await page.goto(path);
      await page.getByRole('heading', { level: 1 }).waitFor(SLOW);
      await page.getByText(/Loading/).first().waitFor({ state: 'detached', ...SLOW });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `${path}: the page is ${overflow}px wider than the phone`);
    }
    await checkPage(admin, 'admin pages at phone width');
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});
