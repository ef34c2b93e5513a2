// Browser end-to-end test of `portcullis demo`.
//
// Starts the demo on two free loopback ports, drives Debian's Chromium (headless, through
// playwright-core over the DevTools protocol) through sign-in at the stand-in Entra ID's
// account picker, the whoami page, the group-limited route, /.auth/me and sign-out, takes
// screenshots, then stops the demo with SIGINT and checks that it exited 0.
//
// Environment:
//   PORTCULLIS_BIN  the binary to run (default: target/debug/portcullis under the repo root)
//   CHROMIUM_BIN    the browser (default: /usr/bin/chromium)
//   E2E_ARTIFACTS   where screenshots and logs go (default: tests/e2e/artifacts)

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BIN = path.resolve(ROOT, process.env.PORTCULLIS_BIN || 'target/debug/portcullis');
const BROWSER = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(process.env.E2E_ARTIFACTS || path.join(HERE, 'artifacts'));

const READY_TIMEOUT_MS = 60_000; // the demo printing "Open https://localhost:P/"
const STEP_TIMEOUT_MS = 30_000; // any one step of a scenario
const ACTION_TIMEOUT_MS = 20_000; // any one browser action or navigation
const RUN_TIMEOUT_MS = 180_000; // the whole run
const STOP_TIMEOUT_MS = 10_000; // SIGINT to exit, before SIGKILL

// From src/demo.rs: the demo's group object IDs.
const GROUP_STAFF = '5a0b6e5c-0d6f-4c1e-9a53-7d2f4b8c1e01';
const GROUP_ADMINS = '8c3d2e1f-7a6b-4d5c-8e9f-0a1b2c3d4e02';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DENIED_TEXT = 'You are signed in, but this application is limited to members of certain groups';

const USERS = {
  alice: { username: 'alice@demo.example', name: 'Alice Anderson' },
  bob: { username: 'bob@demo.example', name: 'Bob Brown' },
  // Written with escapes so that no editor can change the normalization form.
  chloe: { username: 'chloe@demo.example', name: 'Chlo\u00e9 N\u00fa\u00f1ez' },
};

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (...args) => console.log(`[e2e ${elapsed()}]`, ...args);

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}
function checkEq(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what}: timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------
// The demo process

const demo = { child: null, stdout: '', stderr: '', exit: null, exited: null };

function startDemo(port, adminPort) {
  log(`starting ${BIN} demo --port ${port} --admin-port ${adminPort}`);
  const child = spawn(BIN, ['demo', '--port', String(port), '--admin-port', String(adminPort)], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.child = child;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (demo.stderr += d));
  demo.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      demo.exit = { code, signal };
      resolve(demo.exit);
    });
    child.on('error', (err) => {
      demo.exit = { code: null, signal: null, error: err };
      resolve(demo.exit);
    });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Failure(`demo did not print its "Open https://localhost:${port}/" line within ${READY_TIMEOUT_MS / 1000}s`)),
      READY_TIMEOUT_MS,
    );
    child.stdout.on('data', (d) => {
      demo.stdout += d;
      const m = demo.stdout.match(/Open (https:\/\/localhost:(\d+)\/)/);
      if (m) {
        clearTimeout(timer);
        if (Number(m[2]) !== port) reject(new Failure(`demo says to open ${m[1]}, asked for port ${port}`));
        else resolve(m[1]);
      }
    });
    demo.exited.then((e) => {
      clearTimeout(timer);
      reject(new Failure(`demo exited before it was ready: ${describeExit(e)}`));
    });
  });
}

function describeExit(e) {
  if (!e) return 'still running';
  if (e.error) return `could not start: ${e.error.message}`;
  return e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
}

/** SIGINT, then SIGKILL if it has not gone after STOP_TIMEOUT_MS. Returns how it exited. */
async function stopDemo() {
  if (!demo.child || demo.exit?.error) return null;
  if (demo.exit) return { ...demo.exit, early: true };
  demo.child.kill('SIGINT');
  const waitExit = (ms) => withTimeout(demo.exited, ms, 'demo exit').then(() => true, () => false);
  if (!(await waitExit(STOP_TIMEOUT_MS))) {
    log(`demo still running ${STOP_TIMEOUT_MS / 1000}s after SIGINT: SIGKILL`);
    demo.child.kill('SIGKILL');
    await waitExit(5_000);
    return { ...demo.exit, afterKill: true };
  }
  return demo.exit;
}

// If this script is interrupted or dies, the demo goes too.
process.on('exit', () => {
  if (demo.child && !demo.exit) demo.child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    if (demo.child && !demo.exit) demo.child.kill('SIGKILL');
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------
// Browser helpers

let base = ''; // https://localhost:P
let currentPage = null; // the page a failure screenshot is taken of
const screenshots = [];

async function newPage(browser) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1200, height: 900 },
    locale: 'en-US',
  });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  const page = await context.newPage();
  currentPage = page;
  return { context, page };
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
  log(`screenshot ${path.relative(process.cwd(), file) || file}`);
}

const onPicker = (url) => url.pathname.endsWith('/oauth2/v2.0/authorize') && !url.href.startsWith(base);

/** Waits for the stand-in's account picker and checks it lists all three demo users. */
async function expectPicker(page) {
  await page.waitForURL(onPicker);
  await page.locator('a.user').first().waitFor();
  checkEq(await page.locator('h1').innerText(), 'Pick an account', 'picker heading');
  const accounts = await page.locator('a.user span').allInnerTexts();
  checkEq(accounts.sort().join(' '), Object.values(USERS).map((u) => u.username).sort().join(' '), 'accounts on the picker');
}

/** Clicks `user` on the picker and waits until the browser is back on `path` of the proxy. */
async function pickAccount(page, user, pathname = '/') {
  const link = page.locator('a.user').filter({ has: page.locator('span', { hasText: user.username }) });
  checkEq(await link.count(), 1, `picker links for ${user.username}`);
  const text = await link.innerText();
  check(text.includes(user.name), `picker link for ${user.username} shows ${JSON.stringify(text)}, not ${JSON.stringify(user.name)}`);
  await Promise.all([page.waitForURL(`${base}${pathname}`), link.click()]);
}

async function signIn(page, user) {
  const resp = await page.goto(`${base}/`);
  check(resp, 'no response for /');
  await expectPicker(page);
  await pickAccount(page, user);
  await expectWhoami(page, user, '/');
}

/** The whoami page's header table: [[name, value], ...] in page order. */
async function headerRows(page, selector = 'table tr') {
  return page.$$eval(selector, (rows) =>
    rows.map((r) => [r.querySelector('th')?.textContent ?? '', r.querySelector('td')?.textContent ?? '']),
  );
}

async function identity(page) {
  const rows = await headerRows(page, 'tr.id');
  const map = new Map();
  for (const [k, v] of rows) {
    check(!map.has(k), `identity header ${k} appears twice`);
    map.set(k, v);
  }
  return map;
}

async function expectWhoami(page, user, pathname) {
  checkEq(await page.locator('h1').innerText(), `Hello, ${user.name}`, `whoami heading at ${pathname}`);
  checkEq(await page.locator('main p code').first().innerText(), pathname, 'path the upstream received');
  const id = await identity(page);
  checkEq(id.get('x-auth-request-user'), user.username, 'x-auth-request-user');
  checkEq(id.get('x-auth-request-email'), user.username, 'x-auth-request-email');
  checkEq(id.get('x-auth-request-name'), user.name, 'x-auth-request-name');
  check(GUID.test(id.get('x-auth-request-oid') ?? ''), `x-auth-request-oid is not a GUID: ${id.get('x-auth-request-oid')}`);
  return id;
}

// ---------------------------------------------------------------------------------------
// Scenarios

const results = [];

async function step(name, fn) {
  log(`-- ${name}`);
  try {
    await withTimeout(fn(), STEP_TIMEOUT_MS, name);
    results.push({ name, ok: true });
    log(`ok ${name}`);
  } catch (err) {
    results.push({ name, ok: false, err });
    throw err;
  }
}

async function scenarios(browser) {
  // 1. Bob: sign in, whoami, /admin allowed, /.auth/me, sign out.
  {
    const { context, page } = await newPage(browser);
    await step('bob signs in through the account picker', async () => {
      await signIn(page, USERS.bob);
      const id = await identity(page);
      const groups = (id.get('x-auth-request-groups') ?? '').split(',');
      check(groups.includes(GROUP_ADMINS), `bob's groups lack Admins (${GROUP_ADMINS}): ${groups}`);
      check(groups.includes(GROUP_STAFF), `bob's groups lack Staff (${GROUP_STAFF}): ${groups}`);
      await screenshot(page, 'whoami-bob.png');
    });
    await step('bob may open /admin', async () => {
      const resp = await page.goto(`${base}/admin`);
      checkEq(resp.status(), 200, 'status of /admin for bob');
      checkEq(page.url(), `${base}/admin`, 'url');
      await expectWhoami(page, USERS.bob, '/admin');
    });
    await step('bob: /.auth/me', async () => {
      const resp = await page.goto(`${base}/.auth/me`);
      checkEq(resp.status(), 200, 'status of /.auth/me');
      check((resp.headers()['content-type'] ?? '').startsWith('application/json'), `content-type ${resp.headers()['content-type']}`);
      const me = await resp.json();
      check(Array.isArray(me) && me.length === 1, `/.auth/me is not a one-element array: ${JSON.stringify(me).slice(0, 200)}`);
      checkEq(me[0].user_id, USERS.bob.username, '/.auth/me user_id');
      checkEq(me[0].name, USERS.bob.name, '/.auth/me name');
      check(me[0].groups?.includes(GROUP_ADMINS), '/.auth/me groups lack Admins');
    });
    await step('bob signs out', async () => {
      await page.goto(`${base}/`);
      await expectWhoami(page, USERS.bob, '/');
      await Promise.all([page.waitForURL(onPicker), page.getByRole('link', { name: 'Sign out', exact: true }).click()]);
      await expectPicker(page);
      const cookies = await context.cookies(base);
      check(!cookies.some((c) => c.name === '__Host-portcullis'), `session cookie still set after sign-out`);
      await screenshot(page, 'signed-out.png');
      // Opening the app again asks who you are; it does not show Bob.
      await page.goto(`${base}/`);
      await expectPicker(page);
      const me = await context.request.get(`${base}/.auth/me`, { maxRedirects: 0 });
      checkEq(me.status(), 401, 'status of /.auth/me after sign-out');
    });
    await context.close();
  }

  // 2. Alice: signed in, but not in Admins: /admin is a 403 page.
  const alice = await newPage(browser);
  await step('alice signs in; /admin is denied with 403', async () => {
    const { page } = alice;
    const id = await (signIn(page, USERS.alice).then(() => identity(page)));
    checkEq(id.get('x-auth-request-groups'), GROUP_STAFF, "alice's groups");
    const resp = await page.goto(`${base}/admin`);
    checkEq(resp.status(), 403, 'status of /admin for alice');
    checkEq(page.url(), `${base}/admin`, 'url');
    const text = await page.locator('body').innerText();
    check(text.includes(DENIED_TEXT), `403 page lacks the denial text: ${JSON.stringify(text.slice(0, 300))}`);
    check(!text.includes('Hello,'), '403 page shows the upstream');
    await screenshot(page, 'denied-alice.png');
  });

  // 3. Chloé: no groups, a name outside ASCII.
  {
    const { context, page } = await newPage(browser);
    await step('chlo\u00e9 signs in; her name arrives intact', async () => {
      await signIn(page, USERS.chloe);
      const id = await identity(page);
      check(!id.has('x-auth-request-groups'), `chlo\u00e9 has a groups header: ${id.get('x-auth-request-groups')}`);
      await screenshot(page, 'whoami-chloe.png');
      const resp = await page.goto(`${base}/admin`);
      checkEq(resp.status(), 403, 'status of /admin for chlo\u00e9');
    });
    await context.close();
  }

  // 4. Identity headers sent by the browser itself are not passed on.
  await step('forged identity headers from the browser are dropped', async () => {
    const page = await alice.context.newPage();
    currentPage = page;
    await page.setExtraHTTPHeaders({
      'X-Auth-Request-User': 'admin@evil.example',
      'X-Auth-Request-Groups': GROUP_ADMINS,
      'X-Auth-Request-Name': 'Mallory',
    });
    const resp = await page.goto(`${base}/`);
    checkEq(resp.status(), 200, 'status of /');
    checkEq(resp.request().headers()['x-auth-request-user'], 'admin@evil.example', 'forged header as sent by the browser');
    await expectWhoami(page, USERS.alice, '/');
    const rows = await headerRows(page);
    const users = rows.filter(([k]) => k === 'x-auth-request-user').map(([, v]) => v);
    checkEq(JSON.stringify(users), JSON.stringify([USERS.alice.username]), 'x-auth-request-user rows');
    const groups = rows.filter(([k]) => k === 'x-auth-request-groups').map(([, v]) => v);
    checkEq(JSON.stringify(groups), JSON.stringify([GROUP_STAFF]), 'x-auth-request-groups rows');
    check(!rows.some(([, v]) => v.includes('evil.example') || v.includes('Mallory')), 'a forged value reached the upstream');
    await screenshot(page, 'forged-alice.png');
    const admin = await page.goto(`${base}/admin`);
    checkEq(admin.status(), 403, 'status of /admin for alice with a forged Admins groups header');
  });
  await alice.context.close();
}

// ---------------------------------------------------------------------------------------

async function saveFailure(err) {
  console.error(`[e2e ${elapsed()}] FAILED: ${err instanceof Failure ? err.message : err?.stack || err}`);
  if (currentPage && !currentPage.isClosed()) {
    try {
      await withTimeout(currentPage.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }), 10_000, 'failure screenshot');
      writeFileSync(path.join(ARTIFACTS, 'failure.html'), `<!-- ${currentPage.url()} -->\n${await withTimeout(currentPage.content(), 10_000, 'page HTML')}`);
      console.error(`[e2e] page at failure: ${currentPage.url()}`);
      console.error(`[e2e] saved ${path.join(ARTIFACTS, 'failure.png')} and failure.html`);
    } catch (e) {
      console.error(`[e2e] could not save the failing page: ${e.message}`);
    }
  }
}

function saveDemoLogs() {
  writeFileSync(path.join(ARTIFACTS, 'demo.stdout.log'), demo.stdout);
  writeFileSync(path.join(ARTIFACTS, 'demo.stderr.log'), demo.stderr);
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of readdirSync(ARTIFACTS)) rmSync(path.join(ARTIFACTS, f), { recursive: true, force: true });

  let browser = null;
  let failed = null;
  try {
    const port = await freePort();
    let adminPort = await freePort();
    while (adminPort === port) adminPort = await freePort();
    const url = await startDemo(port, adminPort);
    base = url.replace(/\/$/, '');
    log(`demo ready: ${url}`);

    browser = await withTimeout(
      chromium.launch({
        executablePath: BROWSER,
        headless: true,
        timeout: ACTION_TIMEOUT_MS,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      }),
      STEP_TIMEOUT_MS,
      `launching ${BROWSER}`,
    );
    log(`browser: ${BROWSER} ${browser.version()}`);
    await withTimeout(scenarios(browser), RUN_TIMEOUT_MS - (Date.now() - started) - 30_000, 'the scenarios');
  } catch (err) {
    failed = err;
    await saveFailure(err);
  }
  if (browser) await withTimeout(browser.close(), 10_000, 'closing the browser').catch((e) => log(e.message));

  // Ctrl-C stops the demo cleanly: SIGINT, exit status 0.
  const exit = await stopDemo();
  saveDemoLogs();
  if (exit) {
    const ok = !exit.early && !exit.afterKill && exit.code === 0 && exit.signal === null;
    const how = exit.early ? `demo had already stopped by itself (${describeExit(exit)})` : `demo on SIGINT: ${describeExit(exit)}${exit.afterKill ? ' (needed SIGKILL)' : ''}`;
    results.push({ name: 'demo exits 0 on SIGINT', ok, err: ok ? null : new Failure(how) });
    log(`${ok ? 'ok' : 'FAILED'} demo exits 0 on SIGINT (${ok ? describeExit(exit) : how})`);
    if (!ok && !failed) failed = results.at(-1).err;
  }
  if (failed) {
    console.error(`[e2e] demo stdout/stderr: ${path.join(ARTIFACTS, 'demo.stdout.log')}, ${path.join(ARTIFACTS, 'demo.stderr.log')}`);
    if (!demo.exit || demo.exit.code !== 0) console.error(`--- demo stderr (last 4000 chars) ---\n${demo.stderr.slice(-4000)}`);
  }

  for (const file of screenshots) console.log(`artifact: ${file}`);
  const passed = results.filter((r) => r.ok).length;
  const failedCount = results.length - passed + (failed && results.every((r) => r.ok) ? 1 : 0);
  console.log(`e2e: ${passed} passed, ${failedCount} failed (${elapsed()})`);
  return failed ? 1 : 0;
}

const watchdog = setTimeout(() => {
  console.error(`[e2e ${elapsed()}] the whole run took over ${RUN_TIMEOUT_MS / 1000}s: giving up`);
  try {
    saveDemoLogs();
  } catch {}
  if (demo.child && !demo.exit) demo.child.kill('SIGKILL');
  process.exit(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();

process.exitCode = await main();
