// comet.js in a real browser: headless Chromium (Debian's) driven by playwright-core.
//   node tests/browser/run.mjs GATEWAY_BINARY OUT_DIR
// For each transport: messages arrive in order; after the gateway restarts the client
// reconnects and gets everything published since, with no duplicate (the restart is
// reported as a reset); a cursor behind the buffer is reported as lost; subscribe and
// unsubscribe change what arrives without a new data connection. Screenshots of the demo
// page go to OUT_DIR. Then, with no transport forced: Chromium picks the native
// WebSocket; behind a proxy that strips `Upgrade` (so /ws answers 426) the client falls
// back to EventSource from its cursor; and when that proxy starts stripping while a
// WebSocket is open, the client ends on EventSource with every message once, in order.
// Prints one line per check; exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import { upgradeStrippingProxy } from './proxy.mjs';

const [bin, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, cond, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const pub = await freePort();
const adm = await freePort();
let gw = null;
async function startGateway() {
  gw = spawn(bin, ['--listen', `127.0.0.1:${pub}`, '--admin-listen', `127.0.0.1:${adm}`,
    '--buffer', '5', '--poll-timeout', '2s', '--heartbeat', '1s', '--demo'], { stdio: 'ignore' });
  await until('the gateway', async () => {
    try { return (await fetch(`http://127.0.0.1:${adm}/healthz`)).ok; } catch { return false; }
  });
}
async function stopGateway() {
  const g = gw; gw = null;
  const gone = new Promise((r) => g.on('exit', r));
  g.kill('SIGKILL');
  await gone;
}
async function publish(channel, body) {
  const r = await fetch(`http://127.0.0.1:${adm}/pub?channel=${channel}`, { method: 'POST', body });
  check(r.status === 200, `publish: HTTP ${r.status}`);
  return (await r.json()).seq;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const base = `http://127.0.0.1:${pub}`;
let failed = false;
await startGateway();
try {
  // TRANSPORTS=ws,events (or empty) runs only those; AUTOMATIC=0 skips the unforced part.
  for (const t of (process.env.TRANSPORTS ?? 'ws,events,stream,iframe,poll').split(',').filter(Boolean)) {
    const page = await browser.newPage();
    const dataRequests = [];
    page.on('request', (r) => { if (/\/(events|stream|iframe|poll)\?channel=b-/.test(r.url())) dataRequests.push(r.url()); });
    page.on('websocket', (w) => { if (/\/ws\?channel=b-/.test(w.url())) dataRequests.push(w.url()); });
    await page.goto(`${base}/?transport=${t}`, { waitUntil: 'domcontentloaded' });
    const ch = `b-${t}`;
    await page.evaluate(({ t, ch }) => {
      window.got = []; window.lost = []; window.st = [];
      window.c = new Comet({ url: '', channels: [ch], transport: t, timeout: 3000,
        onMessage: (d, c, s) => window.got.push([c, s, d]),
        onLost: (c, f, to) => window.lost.push([c, f, to]),
        onStatus: (s) => window.st.push(s) });
    }, { t, ch });
    await until(`${t}: open`, () => page.evaluate(() => window.st.includes('open')));
    // "From now on" starts when the gateway has the request: a long-poll reports `open`
    // when it sends its first poll, which may reach the gateway after a publish.
    await until(`${t}: subscribed at the gateway`, async () => {
      const r = await fetch(`http://127.0.0.1:${adm}/channels/${ch}`);
      return r.ok && (await r.json()).subscribers >= 1;
    });

    // In order.
    const first = [];
    for (let i = 0; i < 5; i++) first.push(await publish(ch, `one ${i} </script><b>&`));
    await until(`${t}: 5 messages`, () => page.evaluate(() => window.got.length >= 5));
    let got = await page.evaluate(() => window.got);
    check(JSON.stringify(got.map((m) => m[1])) === JSON.stringify(first), `${t}: order ${JSON.stringify(got)}`);
    check(got[4][2] === 'one 4 </script><b>&', `${t}: payload ${got[4][2]}`);
    console.log(`ok ${t}: 5 messages in order`);

    // Gateway restart mid-run: the client comes back by itself.
    await stopGateway();
    await sleep(300);
    await startGateway();
    // The channel starts a new life; whatever is published now must arrive once.
    await until(`${t}: reconnected`, () => page.evaluate(() => window.st.lastIndexOf('open') > window.st.indexOf('reconnecting') && window.st.includes('reconnecting')), 30000)
      .catch(async (e) => { throw new Error(`${e.message}; statuses ${JSON.stringify(await page.evaluate(() => window.st))}`); });
    const second = [];
    for (let i = 0; i < 4; i++) second.push(await publish(ch, `two ${i}`));
    await until(`${t}: messages after restart`, () => page.evaluate((n) => window.got.filter((m) => m[2].startsWith('two')).length >= n, 4), 20000);
    await sleep(300);
    got = await page.evaluate(() => window.got);
    const after = got.filter((m) => m[2].startsWith('two')).map((m) => m[1]);
    check(JSON.stringify(after) === JSON.stringify(second), `${t}: after restart ${JSON.stringify(after)} want ${JSON.stringify(second)}`);
    check(got.length === 9, `${t}: ${got.length} messages, want 9 (duplicates?)`);
    console.log(`ok ${t}: resumed after a gateway restart, no loss, no duplicate`);

    // Lost: a cursor behind the buffer of 5.
    const lch = `lost-${t}`;
    const l0 = await publish(lch, 'x0');
    for (let i = 1; i < 8; i++) await publish(lch, `x${i}`);
    await page.evaluate(({ t, lch, l0 }) => {
      window.lgot = []; window.llost = [];
      window.c2 = new Comet({ url: '', channels: [lch], seq: { [lch]: l0 }, transport: t, timeout: 3000,
        onMessage: (d, c, s) => window.lgot.push(s), onLost: (c, f, to) => window.llost.push([f, to]) });
    }, { t, lch, l0 });
    await until(`${t}: buffered tail`, () => page.evaluate(() => window.lgot.length >= 5));
    const [lgot, llost] = await page.evaluate(() => [window.lgot, window.llost]);
    check(JSON.stringify(llost) === JSON.stringify([[l0, l0 + 2]]), `${t}: lost ${JSON.stringify(llost)}`);
    check(lgot[0] === l0 + 3 && lgot.length === 5, `${t}: tail ${JSON.stringify(lgot)}`);
    await page.evaluate(() => window.c2.close());
    console.log(`ok ${t}: lost range reported`);

    // subscribe/unsubscribe on the live data connection.
    const before = dataRequests.length;
    const ch2 = `b2-${t}`;
    await page.evaluate((ch2) => window.c.subscribe(ch2), ch2);
    await sleep(200);
    const s2 = await publish(ch2, 'sub');
    await until(`${t}: subscribed channel`, () => page.evaluate((s2) => window.got.some((m) => m[1] === s2), s2));
    await page.evaluate((ch) => window.c.unsubscribe(ch), ch);
    await sleep(200);
    await publish(ch, 'after unsubscribe');
    const s3 = await publish(ch2, 'still subscribed');
    await until(`${t}: message after unsubscribe`, () => page.evaluate((s3) => window.got.some((m) => m[1] === s3), s3));
    got = await page.evaluate(() => window.got);
    check(!got.some((m) => m[2] === 'after unsubscribe'), `${t}: got a message after unsubscribe`);
    if (t !== 'poll') {
      check(dataRequests.length === before, `${t}: ${dataRequests.length - before} new data connections for subscribe/unsubscribe`);
    }
    console.log(`ok ${t}: subscribe/unsubscribe without a new data connection`);

    await page.evaluate(() => window.c.close());
    await publish('demo.chat', `hello from the ${t} test`);
    await sleep(1500);
    await page.screenshot({ path: `${outDir}/demo-${t}.png` });
    console.log(`ok ${t}: screenshot ${outDir}/demo-${t}.png`);
    await page.close();
  }
  if (process.env.AUTOMATIC !== '0') await automatic();
} catch (e) {
  console.log(`FAIL ${e.message}`);
  failed = true;
} finally {
  await browser.close();
  if (gw) await stopGateway();
}
process.exit(failed ? 1 : 0);

// With no transport forced. Each page records [status, transport] pairs and every
// message; `expect` is the list of seqs that must arrive, each once, in this order.
async function automatic() {
  async function open(origin, ch, seq) {
    const page = await browser.newPage();
    // A page of the gateway's origin with nothing but comet.js (the demo page would open
    // a connection of its own).
    await page.goto(`${origin}/blank`);
    await page.addScriptTag({ url: '/comet.js' });
    await page.evaluate(({ ch, seq }) => {
      window.got = []; window.st = [];
      window.c = new Comet({ url: '', channels: [ch], seq: seq == null ? {} : { [ch]: seq }, timeout: 3000,
        onMessage: (d, c, s) => window.got.push(s),
        onStatus: (s, t) => window.st.push([s, t]) });
    }, { ch, seq });
    return page;
  }
  const opened = (page, t) => until(`open on ${t}`, () => page.evaluate((t) => window.st.some(([s, x]) => s === 'open' && x === t), t))
    .catch(async (e) => { throw new Error(`${e.message}; statuses ${JSON.stringify(await page.evaluate(() => window.st))}`); });
  async function all(page, what, expect) {
    await until(`${what}: ${expect.length} messages`, () => page.evaluate((n) => window.got.length >= n, expect.length));
    await sleep(300); // a duplicate would arrive meanwhile
    const got = await page.evaluate(() => window.got);
    check(JSON.stringify(got) === JSON.stringify(expect), `${what}: got ${JSON.stringify(got)} want ${JSON.stringify(expect)}`);
  }

  // Straight to the gateway: the native WebSocket.
  {
    const ch = 'auto-direct';
    const page = await open(base, ch, null);
    await opened(page, 'ws');
    const t = await page.evaluate(() => window.c.transport());
    check(t === 'ws', `transport ${t}, want ws`);
    const st = await page.evaluate(() => window.st);
    check(st.every(([, x]) => x === 'ws'), `tried other transports: ${JSON.stringify(st)}`);
    await until('auto: subscribed at the gateway', async () => {
      const r = await fetch(`http://127.0.0.1:${adm}/channels/${ch}`);
      return r.ok && (await r.json()).subscribers >= 1;
    });
    const want = [];
    for (let i = 0; i < 20; i++) want.push(await publish(ch, `m${i}`));
    await all(page, 'auto', want);
    console.log('ok auto: picks ws in Chromium, 20 messages in order, none lost or repeated');
    await page.close();
  }

  // Behind a proxy that strips Upgrade from the start: /ws answers 426, the client goes
  // on to EventSource from the cursor it was given.
  {
    const proxy = await upgradeStrippingProxy(pub);
    proxy.strip = true;
    try {
      const ch = 'auto-refused';
      const want = [];
      for (let i = 0; i < 3; i++) want.push(await publish(ch, `before ${i}`));
      const page = await open(`http://127.0.0.1:${proxy.port}`, ch, want[0]);
      await opened(page, 'events');
      const st = await page.evaluate(() => window.st);
      // One refused WebSocket, then EventSource at once (no backoff round on ws).
      const path = [['connecting', 'ws'], ['connecting', 'events'], ['open', 'events']];
      check(JSON.stringify(st) === JSON.stringify(path), `statuses ${JSON.stringify(st)}, want ${JSON.stringify(path)}`);
      check(proxy.stripped >= 1, `the proxy saw no WebSocket handshake (${proxy.stripped})`);
      for (let i = 0; i < 3; i++) want.push(await publish(ch, `after ${i}`));
      await all(page, 'refused', want);
      console.log(`ok fallback: /ws refused by the proxy (${proxy.stripped} handshake(s) stripped), events from the cursor, none lost or repeated`);
      await page.close();
    } finally {
      proxy.close();
    }
  }

  // Through the proxy while it passes WebSockets, then it starts stripping and cuts every
  // connection: the client retries WebSocket with backoff, gives way to EventSource, and
  // resumes from its cursor.
  {
    const proxy = await upgradeStrippingProxy(pub);
    try {
      const ch = 'auto-switch';
      const page = await open(`http://127.0.0.1:${proxy.port}`, ch, null);
      await opened(page, 'ws');
      await until('switch: subscribed at the gateway', async () => {
        const r = await fetch(`http://127.0.0.1:${adm}/channels/${ch}`);
        return r.ok && (await r.json()).subscribers >= 1;
      });
      const want = [];
      for (let i = 0; i < 5; i++) want.push(await publish(ch, `ws ${i}`));
      await all(page, 'switch, on ws', want);
      proxy.strip = true;
      proxy.cut();
      for (let i = 0; i < 5; i++) want.push(await publish(ch, `outage ${i}`));
      await opened(page, 'events');
      for (let i = 0; i < 5; i++) want.push(await publish(ch, `events ${i}`));
      await all(page, 'switch', want);
      const t = await page.evaluate(() => window.c.transport());
      check(t === 'events', `transport ${t} after the switch, want events`);
      check(proxy.stripped >= 1, 'the proxy stripped no WebSocket handshake after the cut');
      console.log('ok switch: ws dropped and refused, then events from the cursor, 15 messages once each in order');
      await page.close();
    } finally {
      proxy.close();
    }
  }
}
