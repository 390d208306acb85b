// A loopback HTTP/1.1 relay in front of the gateway for the browser test. It passes bytes
// both ways unchanged, except that while `strip` is set it removes the `Upgrade` header
// (and the `upgrade` token of `Connection`) from every request head it relays, so a
// WebSocket handshake reaches the gateway as a plain GET /ws and is answered 426, the way
// a proxy that knows nothing of WebSocket refuses it. `stripped` counts those requests;
// `cut()` destroys every relayed connection. Request bodies are relayed by
// Content-Length (the browser sends no chunked bodies here); once a handshake passes
// unstripped, that connection is relayed raw.
import net from 'node:net';

export function upgradeStrippingProxy(targetPort) {
  const socks = new Set();
  const proxy = {
    strip: false,
    stripped: 0,
    port: 0,
    cut() { for (const s of socks) s.destroy(); socks.clear(); },
    close() { proxy.cut(); server.close(); },
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    socks.add(client);
    socks.add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); socks.delete(client); socks.delete(upstream); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.pipe(client);
    let buf = Buffer.alloc(0);
    let body = 0;      // request body bytes still to relay as they are
    let raw = false;   // a WebSocket went through: frames from here on
    client.on('data', (chunk) => {
      if (raw) return void upstream.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (body > 0) {
          const n = Math.min(body, buf.length);
          upstream.write(buf.subarray(0, n));
          buf = buf.subarray(n);
          body -= n;
          if (body > 0) return;
        }
        const at = buf.indexOf('\r\n\r\n');
        if (at < 0) return;
        let lines = buf.subarray(0, at).toString('latin1').split('\r\n');
        buf = buf.subarray(at + 4);
        const upgrade = lines.some((l) => /^upgrade\s*:/i.test(l));
        if (upgrade && proxy.strip) {
          proxy.stripped++;
          lines = lines.filter((l) => !/^upgrade\s*:/i.test(l)).map((l) => {
            const m = /^connection\s*:(.*)$/i.exec(l);
            if (!m) return l;
            const kept = m[1].split(',').map((t) => t.trim()).filter((t) => t && t.toLowerCase() !== 'upgrade');
            return `Connection: ${kept.length ? kept.join(', ') : 'keep-alive'}`;
          });
        }
        const cl = lines.map((l) => /^content-length\s*:\s*(\d+)/i.exec(l)).find(Boolean);
        body = cl ? Number(cl[1]) : 0;
        upstream.write(lines.join('\r\n') + '\r\n\r\n');
        if (upgrade && !proxy.strip) {
          raw = true;
          if (buf.length) upstream.write(buf);
          buf = Buffer.alloc(0);
          return;
        }
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => { proxy.port = server.address().port; resolve(proxy); });
  });
}
