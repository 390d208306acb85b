// The gateway's /events endpoint read by the npm `eventsource` package (Node.js), which
// reconnects by itself and resends the last event id as the Last-Event-ID header.
//   node tests/sse/node_eventsource.mjs BASE_URL CHANNEL
// Prints one JSON line per thing the library reports (see tests/sse_common/):
//   {"kind":"request","url":…,"lastEventId":…}  a connection attempt (from its fetch hook)
//   {"kind":"open"} / {"kind":"error","message":…}
//   {"kind":"message","event":…,"data":RAW,"id":…,"json":PARSED|null,"error":null|TEXT}
// Runs until its standard input closes (or for at most 5 minutes).
import { EventSource } from 'eventsource';

const [base, channel] = process.argv.slice(2);
const report = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function onData(event, raw, id) {
  // The handler must never throw: a parse failure is reported, not raised.
  let json = null;
  let error = null;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    error = String(e);
  }
  report({ kind: 'message', event, data: raw, id, json, error });
}

const es = new EventSource(`${base}/events?channel=${encodeURIComponent(channel)}`, {
  fetch: (url, init) => {
    const h = (init && init.headers) || {};
    report({ kind: 'request', url: String(url), lastEventId: h['Last-Event-ID'] ?? null });
    return fetch(url, init);
  },
});
es.onopen = () => report({ kind: 'open' });
es.onerror = (e) => report({ kind: 'error', message: `${e.message ?? 'error'} (code ${e.code ?? '-'})` });
es.onmessage = (e) => onData(e.type, e.data, e.lastEventId);

function stop() {
  es.close();
  process.exit(0);
}
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
setTimeout(() => { report({ kind: 'fatal', message: 'ran for 5 minutes without being stopped' }); stop(); }, 300_000).unref();
