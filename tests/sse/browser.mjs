// The gateway's /events endpoint read by a browser SSE library in headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core):
//   node tests/sse/browser.mjs polyfill|fetch-event-source BASE_URL CHANNEL
// polyfill: `event-source-polyfill` (EventSourcePolyfill; reconnects by itself and resends
//   the last event id as the `lastEventId=` query parameter).
// fetch-event-source: `@microsoft/fetch-event-source` (resends the last event id as the
//   `last-event-id` header; retries on close because `onclose` throws, the pattern its
//   README documents).
// The page and the libraries' files are served by playwright routes under
// BASE_URL/__sse-test/ (same origin as the gateway, no bundler: the ES module files of
// fetch-event-source are served as they are, their extension-less imports mapped to .js).
// Prints one JSON line per thing the library reports (see tests/sse_common/):
//   {"kind":"request","url":…,"lastEventId":…}  a connection attempt to /events
//   {"kind":"open"} / {"kind":"error","message":…} / {"kind":"close"}
//   {"kind":"message","event":…,"data":RAW,"id":…,"json":PARSED|null,"error":null|TEXT}
//   {"kind":"pageerror","message":…} / {"kind":"fatal","message":…}
// Runs until its standard input closes (or for at most 5 minutes).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [lib, base, channel] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const mods = path.join(here, 'node_modules');
const report = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Shared by both pages: the message handler. It never throws: a parse failure is reported.
const common = `
function onData(event, raw, id) {
  let json = null, error = null;
  try { json = JSON.parse(raw); } catch (e) { error = String(e); }
  window.report({ kind: 'message', event, data: raw, id, json, error });
}`;

const pages = {
  polyfill: `<!DOCTYPE html><meta charset="utf-8"><title>event-source-polyfill</title>
<script src="./event-source-polyfill.js"></script>
<script>${common}
window.start = function (url) {
  const es = new EventSourcePolyfill(url);
  es.onopen = () => window.report({ kind: 'open' });
  es.onerror = (e) => window.report({ kind: 'error', message: String((e && e.error) || (e && e.type) || e) });
  es.onmessage = (e) => onData(e.type, e.data, e.lastEventId);
  window.es = es;
};
</script>`,
  'fetch-event-source': `<!DOCTYPE html><meta charset="utf-8"><title>fetch-event-source</title>
<script>${common}</script>
<script type="module">
import { fetchEventSource, EventStreamContentType } from './fetch-event-source/index.js';
window.start = function (url) {
  fetchEventSource(url, {
    openWhenHidden: true,
    async onopen(response) {
      const type = response.headers.get('content-type') || '';
      window.report({ kind: 'open', status: response.status, contentType: type });
      if (!response.ok || !type.startsWith(EventStreamContentType)) {
        throw new Error('unexpected response ' + response.status + ' ' + type);
      }
    },
    onmessage(msg) { onData(msg.event, msg.data, msg.id); },
    onclose() {
      window.report({ kind: 'close' });
      // The documented retry-on-close pattern: throwing here makes the library retry.
      throw new Error('the server closed the stream; retrying');
    },
    onerror(err) {
      window.report({ kind: 'error', message: String(err) });
      // Returning nothing retries after the server's retry: hint.
    },
  });
};
</script>`,
};

const files = {
  'event-source-polyfill.js': path.join(mods, 'event-source-polyfill/src/eventsource.js'),
};
const fesDir = path.join(mods, '@microsoft/fetch-event-source/lib/esm');

if (!pages[lib]) {
  report({ kind: 'fatal', message: `unknown library ${lib}` });
  process.exit(2);
}

let browser = null;
async function stop(code) {
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
}
process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(0));
process.stdin.resume();
setTimeout(() => { report({ kind: 'fatal', message: 'ran for 5 minutes without being stopped' }); stop(1); }, 300_000).unref();

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  await page.exposeFunction('report', (o) => report(o));
  page.on('pageerror', (e) => report({ kind: 'pageerror', message: String(e) }));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/events') {
      report({ kind: 'request', url: r.url(), lastEventId: r.headers()['last-event-id'] ?? null });
    }
  });
  const prefix = `${base}/__sse-test/`;
  await page.route(`${prefix}**`, async (route) => {
    const name = route.request().url().slice(prefix.length).split('?')[0];
    let body = null;
    let type = 'text/javascript; charset=utf-8';
    if (name === 'index.html') {
      body = pages[lib];
      type = 'text/html; charset=utf-8';
    } else if (files[name]) {
      body = fs.readFileSync(files[name]);
    } else if (name.startsWith('fetch-event-source/')) {
      let file = name.slice('fetch-event-source/'.length);
      if (!file.endsWith('.js')) file += '.js'; // `import … from './fetch'`
      if (/^[a-z]+\.js$/.test(file) && fs.existsSync(path.join(fesDir, file))) {
        body = fs.readFileSync(path.join(fesDir, file));
      }
    }
    if (body === null) await route.fulfill({ status: 404, body: 'not found' });
    else await route.fulfill({ status: 200, contentType: type, body });
  });
  await page.goto(`${prefix}index.html`, { waitUntil: 'load' });
  await page.waitForFunction(() => typeof window.start === 'function', null, { timeout: 15000 });
  await page.evaluate((url) => { window.start(url); },
    `${base}/events?channel=${encodeURIComponent(channel)}`);
} catch (e) {
  report({ kind: 'fatal', message: String(e && e.stack || e) });
  await stop(1);
}
