// Drives comet.js under Node (fetch streaming, fetch long-polling) against a gateway:
// node tests/js/node_client.mjs PUBLIC_ADDR ADMIN_ADDR TRANSPORT
// Loads the client as served (/comet.mjs), receives in order across server-side stream
// ends, checks lost reporting, subscribe/unsubscribe and close. Exits 0 on success.
const [pub, admin, transport] = process.argv.slice(2);
const base = `http://${pub}`;
const src = await (await fetch(`${base}/comet.mjs`)).text();
const { default: Comet } = await import('data:text/javascript,' + encodeURIComponent(src));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, cond, ms = 15000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
async function publish(channel, body) {
  const r = await fetch(`http://${admin}/pub?channel=${channel}`, { method: 'POST', body });
  if (r.status !== 200) throw new Error(`publish ${r.status}`);
  return (await r.json()).seq;
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

const ch = `js-${transport}`;
const got = [];
const statuses = [];
const c = new Comet({
  url: base, channels: [ch], transport,
  onMessage: (data, channel, seq) => got.push({ data, channel, seq }),
  onStatus: (s) => statuses.push(s),
});
await until('open', () => statuses.includes('open'));

// 30 messages over ~1.5 s: the server ends streams every 300 ms (reconnect) and polls
// come and go; the client must resume from its cursor with no gap and no duplicate.
const seqs = [];
for (let i = 0; i < 30; i++) {
  seqs.push(await publish(ch, `m${i} <ok> "q" é`));
  await sleep(50);
}
await until('all 30 messages', () => got.length >= 30);
await sleep(200);
check(got.length === 30, `got ${got.length} messages, want 30 (duplicates?)`);
got.forEach((m, i) => {
  check(m.seq === seqs[i], `message ${i}: seq ${m.seq}, want ${seqs[i]}`);
  check(m.data === `m${i} <ok> "q" é`, `message ${i}: data ${m.data}`);
});

// subscribe and unsubscribe steer the live subscriber.
const extra = `js-extra-${transport}`;
await c.subscribe(extra);
await sleep(100);
const e1 = await publish(extra, 'extra one');
await until('the subscribed channel', () => got.some((m) => m.channel === extra && m.seq === e1));
await c.unsubscribe(extra);
await sleep(100);
await publish(extra, 'not for us');
const last = await publish(ch, 'after unsubscribe');
await until('the message after unsubscribe', () => got.some((m) => m.seq === last && m.channel === ch));
check(!got.some((m) => m.data === 'not for us'), 'received a message after unsubscribe');

// A cursor behind the buffer (the gateway runs with --buffer 5) is reported as lost.
const lostCh = `js-lost-${transport}`;
const first = await publish(lostCh, 'x0');
for (let i = 1; i < 10; i++) await publish(lostCh, `x${i}`);
const lost = [];
const late = [];
const c2 = new Comet({
  url: base, channels: [lostCh], seq: { [lostCh]: first }, transport,
  onMessage: (data, channel, seq) => late.push(seq),
  onLost: (channel, from, to) => lost.push([from, to]),
});
await until('the buffered tail', () => late.length >= 5);
check(lost.length === 1 && lost[0][0] === first && lost[0][1] === first + 4, `lost ${JSON.stringify(lost)}`);
check(late.join() === [5, 6, 7, 8, 9].map((k) => first + k).join(), `late ${late}`);

await c.close();
await c2.close();
check(statuses.includes('closed'), 'no closed status');
console.log(JSON.stringify({ transport, received: got.length, statuses: [...new Set(statuses)] }));
process.exit(0);
