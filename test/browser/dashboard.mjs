// The kvserver dashboard (GET /) in a real browser: Debian's Chromium,
// driven by playwright-core (no browser download of its own).
//
//   node test/browser/dashboard.mjs URL SCREENSHOT.png
//
// URL is the dashboard, e.g. http://127.0.0.1:8080/.  Through the page's
// own form it puts a key, reads it back, asks for a missing key (the error
// must show the HTTP status and the JSON message), lists by prefix, watches
// the live panel's total request counter move and its figures fill in, saves
// a screenshot, then deletes the key.  Each step prints "ok - ..." on
// stdout; the first failure prints "dashboard.mjs: FAIL: ..." on stderr,
// saves a screenshot anyway (if it can) and exits 1.  Usage errors exit 2.
//
// Environment: CHROMIUM (default /usr/bin/chromium), DASHBOARD_TIMEOUT_MS
// (whole run, default 90000).  Chromium gets a fresh temporary profile and
// HOME, so it runs as any user (e.g. postgres) whatever HOME says.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [url, shot] = process.argv.slice(2);
if (!url || !shot || !/^https?:\/\//.test(url)) {
  console.error('usage: node dashboard.mjs http://HOST:PORT/ SCREENSHOT.png');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const totalTimeout = Number(process.env.DASHBOARD_TIMEOUT_MS) || 90000;
const STEP = 15000; // any single wait

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvdash-'));
let context = null;
let page = null;
let finished = false;

function ok(msg) { console.log(`ok - ${msg}`); }

class Failure extends Error {}
function check(cond, msg) { if (!cond) throw new Failure(msg); }

async function cleanup() {
  if (context) await context.close().catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
}

async function fail(msg) {
  if (finished) return;
  finished = true;
  console.error(`dashboard.mjs: FAIL: ${msg}`);
  if (page) {
    const out = await page.locator('#output').innerText({ timeout: 2000 }).catch(() => null);
    if (out !== null) console.error(`dashboard.mjs: #output says: ${JSON.stringify(out)}`);
    await page.screenshot({ path: shot, fullPage: true, timeout: 5000 })
      .then(() => console.error(`dashboard.mjs: screenshot of the failure: ${shot}`))
      .catch(() => {});
  }
  await cleanup();
  process.exit(1);
}

const watchdog = setTimeout(
  () => fail(`gave up after ${totalTimeout} ms (DASHBOARD_TIMEOUT_MS)`), totalTimeout);

// Wait until the text of a selector satisfies pred; returns that text.
async function waitText(sel, pred, what) {
  const deadline = Date.now() + STEP;
  let last = null;
  while (Date.now() < deadline) {
    last = await page.locator(sel).innerText({ timeout: STEP });
    if (pred(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Failure(`${what}: ${sel} still says ${JSON.stringify(last)} after ${STEP} ms`);
}

const num = (s) => Number(String(s).replace(/[^0-9.]/g, ''));

async function main() {
  if (!fs.existsSync(executablePath))
    throw new Failure(`no Chromium at ${executablePath} (run test/browser/setup.sh as root)`);

  const home = path.join(tmp, 'home');
  fs.mkdirSync(home);
  // launchPersistentContext: playwright refuses --user-data-dir in args.
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
    viewport: { width: 1200, height: 820 },
    timeout: 60000,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(STEP);

  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // (Chromium logs every 4xx fetch as "Failed to load resource": expected here)
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  // Everything the page loads must come from the server itself.
  const origin = new URL(url).origin;
  const foreign = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:') && u !== 'about:blank') foreign.push(u);
  });

  const res = await page.goto(url, { waitUntil: 'load' });
  check(res && res.status() === 200, `GET ${url}: status ${res && res.status()}, want 200`);
  ok(`page loaded: ${JSON.stringify(await page.title())}`);

  for (const id of ['key', 'value', 'btn-put', 'btn-get', 'btn-del', 'btn-list', 'prefix', 'output',
    'stat-rps', 'stat-hit', 'stat-p99', 'stat-fill', 'stat-requests'])
    check(await page.locator(`#${id}`).count() === 1, `no element #${id}`);
  ok('all the elements are there');

  const before = num(await waitText('#stat-requests', (t) => /\d/.test(t), 'first /metrics poll'));
  ok(`live panel shows a request total: ${before}`);

  // put through the form
  const key = `dashboard-test/${process.pid}-${Date.now()}/é ü`;
  const value = `hello from the browser ✓ <b>not html</b> ${Date.now()}`;
  await page.fill('#key', key);
  await page.fill('#value', value);
  await page.click('#btn-put');
  await waitText('#out-status', (t) => /^201\b/.test(t), 'PUT');
  ok('put through the form: 201');

  // the server really has it
  const direct = await fetch(new URL('/kv/' + encodeURIComponent(key), url));
  check(direct.status === 200, `GET the key from node: status ${direct.status}`);
  check(await direct.text() === value, 'the server holds a different value than the form sent');
  ok('the server holds the value');

  // read it back through the form, with the value field emptied first
  await page.fill('#value', '');
  await page.click('#btn-get');
  await waitText('#output', (t) => t.includes(value), 'GET');
  check(/^200\b/.test(await page.locator('#out-status').innerText()), 'GET: status line is not 200');
  check(await page.locator('#output b').count() === 0, 'the value was rendered as HTML');
  ok('got it back through the form: the output shows the value, as text');

  // a missing key: status and JSON message
  await page.fill('#key', key + '/missing');
  await page.click('#btn-get');
  const err = await waitText('#output', (t) => /\b404\b/.test(t), 'GET of a missing key');
  check(/not_found/.test(err), `404 output lacks the error code: ${JSON.stringify(err)}`);
  check(/[a-z]{3,}/.test(await page.locator('#out-body').innerText()), 'no error message shown');
  ok('a missing key shows 404, not_found and the message');

  // list by prefix; a listed key is a button that gets it
  await page.fill('#prefix', `dashboard-test/${process.pid}-`);
  await page.click('#btn-list');
  // the previous 404 output names the key too: wait for the listing itself
  await waitText('#output', (t) => t.includes(key) && /\b\d+ keys?\b/.test(t), 'list by prefix');
  check(/\b1 key\b/.test(await page.locator('#out-status').innerText()), 'list: want exactly 1 key');
  ok('list by prefix shows the key');
  await page.locator('#out-keys button', { hasText: key }).click();
  await waitText('#output', (t) => t.includes(value), 'get from the listing');
  ok('clicking a listed key gets it');

  // watch the key, then its prefix: changes made elsewhere show up
  await page.fill('#key', key);
  await page.click('#btn-watch');
  await waitText('#watch-log', (t) => t.includes(JSON.stringify(value)), 'watch: the value');
  const kvSend = (k, init) => fetch(new URL('/kv/' + encodeURIComponent(k), url), init);
  await kvSend(key, { method: 'PUT', body: 'changed elsewhere' });
  await waitText('#watch-log', (t) => t.includes('"changed elsewhere"'), 'watch: the new value');
  ok('watching a key shows a value written elsewhere');
  const other = `dashboard-test/${process.pid}-watched`;
  await page.click('#btn-watch-prefix');
  await waitText('#watch-log', (t) => /1 key\(s\); waiting/.test(t), 'watch prefix: started');
  await kvSend(other, { method: 'PUT', body: 'x' });
  await waitText('#watch-log', (t) => t.includes(`created ${other}`), 'watch prefix: created');
  await kvSend(other, { method: 'DELETE' });
  await waitText('#watch-log', (t) => t.includes(`deleted ${other}`), 'watch prefix: deleted');
  await page.click('#btn-watch-stop');
  await waitText('#watch-status', (t) => /Not watching/.test(t), 'watch: stop');
  await kvSend(key, { method: 'PUT', body: value });
  ok('watching a prefix shows keys created and deleted elsewhere; Stop stops');

  // the live panel moves and fills in
  const after = num(await waitText('#stat-requests', (t) => num(t) > before, 'request total'));
  ok(`request total moved: ${before} -> ${after}`);
  await waitText('#stat-rps', (t) => /\d/.test(t), 'requests per second');
  await waitText('#stat-p99', (t) => /\d/.test(t), 'p99 latency');
  await waitText('#stat-hit', (t) => /\d%/.test(t), 'cache hit ratio');
  await waitText('#stat-fill', (t) => /\d%|off/.test(t), 'cache fill');
  check(await page.locator('#live.up').count() === 1, 'live indicator is not up');
  ok('requests/s, hit ratio, p99 and cache fill are shown');
  await waitText('#role', (t) => t === 'primary', 'replication role');
  ok('the replication role is shown: primary');

  // ~12 s of light, bounded traffic (sequential, loopback only) so the
  // charts have a shape; the screenshot is taken while it still runs
  const loadKey = (i) => new URL('/kv/' + encodeURIComponent(`dashboard-test/${process.pid}-load/${i}`), url);
  const send = async (u, opts) => { const r = await fetch(u, opts); await r.arrayBuffer(); return r; };
  for (let i = 0; i < 20; i++) await send(loadKey(i), { method: 'PUT', body: 'v'.repeat(200 + 50 * i) });
  const loadEnd = Date.now() + 12000;
  const load = (async () => {
    for (let i = 0; Date.now() < loadEnd && i < 20000; i++) {
      if (i % 10 === 0) await send(loadKey(i % 20), { method: 'PUT', body: 'x'.repeat(100 + i % 900) });
      else await send(loadKey(i % 20));
      // the rate swells and ebbs over a few seconds
      const phase = Math.sin((loadEnd - Date.now()) / 1200);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 30 + 60 * (1 + phase)));
    }
  })().catch((e) => e);
  await page.waitForTimeout(10500);
  const spark = await page.locator('#spark-rps path.l').getAttribute('d');
  check(spark && spark.split('L').length >= 8, `requests/s chart has too few points: ${spark}`);
  ok('the charts are drawn');

  // show the value for the picture, then take it
  await page.fill('#key', key);
  await page.fill('#value', value);
  await page.click('#btn-get');
  await waitText('#output', (t) => t.includes(value), 'GET for the screenshot');
  fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  ok(`screenshot: ${shot}`);
  const loadError = await load;
  check(!(loadError instanceof Error), `the background traffic failed: ${loadError}`);

  // delete, through the form
  await page.click('#btn-del');
  await waitText('#out-status', (t) => /^204\b/.test(t), 'DELETE');
  check((await fetch(new URL('/kv/' + encodeURIComponent(key), url))).status === 404,
    'the key is still there after Delete');
  for (let i = 0; i < 20; i++) await send(loadKey(i), { method: 'DELETE' });
  ok('deleted through the form');

  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
  check(foreign.length === 0, `the page loaded from elsewhere: ${foreign.join(', ')}`);
  ok('no errors in the page, nothing loaded from elsewhere');
}

try {
  await main();
} catch (e) {
  await fail(e instanceof Failure ? e.message : (e && e.stack) || String(e));
}
clearTimeout(watchdog);
finished = true;
await cleanup();
console.log('dashboard.mjs: all checks passed');
