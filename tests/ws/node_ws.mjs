// The gateway's /ws endpoint read by the npm `ws` package (Node.js).
//   node tests/ws/node_ws.mjs
// Driven by one JSON command per line on standard input (see tests/ws_common/):
//   {"op":"open","base":"ws://HOST:PORT","channel":"a,b","seq":"8,3","token":T|null,"reconnect":BOOL}
//   {"op":"send","text":…}   one text frame to the gateway (a subscribe/unsubscribe/close command)
//   {"op":"pause"} / {"op":"resume"}   stop / go on reading the socket
// `ws` does not reconnect by itself; like any integrator, this script does when
// `reconnect` is set: after a close it waits (200 ms doubling to 2 s) and opens /ws again
// with the cursor it kept (from `hello`, then `data`/`lost`/`reset`, and the channels it
// subscribed or unsubscribed), or the one a `reconnect` event gave.
// Prints one JSON line per thing the library reports:
//   {"kind":"request","url":…}  {"kind":"open"}  {"kind":"refused","status":N}
//   {"kind":"message","data":RAW,"json":PARSED|null,"error":null|TEXT}
//   {"kind":"close","code":N,"reason":…}  {"kind":"error","message":…}
// Runs until its standard input closes (or for at most 5 minutes).
import WebSocket from 'ws';
import readline from 'node:readline';

const report = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let opts = null;
let ws = null;
let paused = false;
let delay = 200;
let timer = null;
// channel -> next seq wanted (null: from now on), in subscription order.
const cursor = new Map();

function url() {
  const names = [...cursor.keys()];
  const seqs = names.map((n) => cursor.get(n) ?? '');
  let u = `${opts.base}/ws?channel=${names.join(',')}&seq=${seqs.join(',')}`;
  if (opts.token) u += `&token=${encodeURIComponent(opts.token)}`;
  return u;
}

function setCursor(text) {
  cursor.clear();
  for (const part of text.split(',').filter(Boolean)) {
    const [name, seq] = part.split(':');
    cursor.set(name, seq === '' || seq == null ? null : Number(seq));
  }
}

function follow(ev) {
  switch (ev.type) {
    case 'hello': setCursor(ev.cursor); delay = 200; break;
    case 'reconnect': setCursor(ev.cursor); break;
    case 'data': if (cursor.has(ev.channel)) cursor.set(ev.channel, ev.seq + 1); break;
    case 'lost': if (cursor.has(ev.channel)) cursor.set(ev.channel, ev.to + 1); break;
    case 'reset': if (cursor.has(ev.channel)) cursor.set(ev.channel, ev.seq); break;
    case 'close': cursor.delete(ev.channel); break;
  }
}

function connect() {
  timer = null;
  const u = url();
  report({ kind: 'request', url: u });
  const sock = new WebSocket(u);
  ws = sock;
  sock.on('open', () => { report({ kind: 'open' }); if (paused) sock.pause(); });
  sock.on('unexpected-response', (req, res) => {
    report({ kind: 'refused', status: res.statusCode });
    res.resume();
    sock.terminate();
  });
  sock.on('message', (raw, isBinary) => {
    const data = isBinary ? null : raw.toString('utf8');
    // The handler must never throw: a parse failure is reported, not raised.
    let json = null;
    let error = isBinary ? 'a binary message' : null;
    try {
      if (!isBinary) { json = JSON.parse(data); follow(json); }
    } catch (e) {
      error = String(e);
    }
    report({ kind: 'message', data, json, error });
  });
  sock.on('error', (e) => report({ kind: 'error', message: String(e.message || e) }));
  sock.on('close', (code, reason) => {
    report({ kind: 'close', code, reason: reason.toString() });
    if (ws !== sock) return;
    ws = null;
    if (opts.reconnect && !timer) {
      timer = setTimeout(connect, delay);
      delay = Math.min(2000, delay * 2);
    }
  });
}

function command(line) {
  const c = JSON.parse(line);
  switch (c.op) {
    case 'open':
      opts = c;
      setCursor(c.channel.split(',').map((n, i) => `${n}:${(c.seq || '').split(',')[i] ?? ''}`).join(','));
      connect();
      break;
    case 'send': {
      const cmd = JSON.parse(c.text);
      const names = String(cmd.channel ?? '').split(',').filter(Boolean);
      const seqs = String(cmd.seq ?? '').split(',');
      if (cmd.type === 'subscribe') names.forEach((n, i) => { if (!cursor.has(n)) cursor.set(n, seqs[i] ? Number(seqs[i]) : null); });
      if (cmd.type === 'unsubscribe') names.forEach((n) => cursor.delete(n));
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(c.text);
      else report({ kind: 'error', message: 'send: not open' });
      break;
    }
    case 'pause': paused = true; if (ws) ws.pause(); break;
    case 'resume': paused = false; if (ws) ws.resume(); break;
    default: report({ kind: 'fatal', message: `unknown command ${line}` });
  }
}

function stop() {
  if (ws) ws.terminate();
  process.exit(0);
}
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  try { command(line); } catch (e) { report({ kind: 'fatal', message: `${e.stack || e}` }); }
});
rl.on('close', stop);
setTimeout(() => { report({ kind: 'fatal', message: 'ran for 5 minutes without being stopped' }); stop(); }, 300_000).unref();
