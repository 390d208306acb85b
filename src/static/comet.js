/* comet.js: the browser client of Comet Gateway. No dependencies.
 *
 *   var c = new Comet({url: 'http://127.0.0.1:8100', channels: ['news'],
 *                      onMessage: function (data, channel, seq) { ... }});
 *
 * One data connection per instance, whatever the number of channels. Transports, in the
 * order tried: WebSocket ('ws'), EventSource ('events'), fetch streaming ('stream'),
 * hidden iframe ('iframe', only for a gateway on the page's own origin), JSONP
 * long-polling ('poll'); `transport` forces one. The client keeps a
 * cursor per channel and resumes from it on every reconnect, so nothing is missed or
 * repeated; gaps the server announces go to onLost. Reconnects back off exponentially
 * with jitter. A transport that fails three times in a row without opening gives way to
 * the next; a WebSocket that has never opened in this instance (upgrade refused by a
 * proxy, closed before `hello`) gives way at once, with the cursor kept.
 * subscribe/unsubscribe/close use the control requests and keep the data
 * connection. Loaded as a plain script it defines window.Comet; /comet.mjs is the same
 * code as an ES module (default export).
 */
(function (root) {
  'use strict';

  var hasDom = typeof document !== 'undefined';
  var counter = 0;

  // An iframe from another origin may not call into this page, so that transport only
  // serves a gateway on the page's own origin.
  function sameOrigin(url) {
    if (!hasDom || !url) return hasDom;
    try { return new URL(url, location.href).origin === location.origin; } catch (e) { return false; }
  }

  function supported(url) {
    var t = [];
    if (typeof WebSocket !== 'undefined') t.push('ws');
    if (typeof EventSource !== 'undefined') t.push('events');
    if (typeof fetch !== 'undefined' && typeof ReadableStream !== 'undefined' &&
        typeof TextDecoder !== 'undefined') t.push('stream');
    if (sameOrigin(url)) t.push('iframe');
    t.push('poll');
    return t;
  }

  function Comet(opts) {
    opts = opts || {};
    this.url = (opts.url || '').replace(/\/$/, '');
    this.cursor = {};
    var seq = opts.seq || {};
    (opts.channels || []).forEach(function (c) {
      this.cursor[c] = seq[c] == null ? null : seq[c];
    }, this);
    this.onMessage = opts.onMessage || function () {};
    this.onLost = opts.onLost || function () {};
    this.onStatus = opts.onStatus || function () {};
    this.order = opts.transport ? [opts.transport] : supported(this.url);
    this.maxDelay = opts.maxDelay || 30000;
    // Silence longer than this (no event, not even a heartbeat) means the connection died
    // without telling (a streaming iframe, a NAT): keep it above the gateway's
    // --heartbeat and --poll-timeout.
    this.timeout = opts.timeout || 35000;
    this.watch = null;
    this.transportIndex = 0;
    this.client = null;
    this.attempt = 0;
    this.failures = 0;
    // A WebSocket reached `hello` once: later failures to open are outages, not a
    // refused upgrade, and count like any transport's.
    this.wsWorked = false;
    this.closed = false;
    this.isOpen = false;
    this.conn = null;
    this.timer = null;
    this._connect();
  }

  Comet.prototype.transport = function () { return this.order[this.transportIndex]; };

  Comet.prototype._query = function () {
    var names = Object.keys(this.cursor);
    var seqs = names.map(function (n) { var s = this.cursor[n]; return s == null ? '' : s; }, this);
    return 'channel=' + names.map(encodeURIComponent).join(',') + '&seq=' + seqs.join(',');
  };

  Comet.prototype._status = function (s) { this.onStatus(s, this.transport()); };

  Comet.prototype._alive = function () {
    var self = this;
    var conn = this.conn;
    clearTimeout(this.watch);
    // Every transport's heartbeat reaches the page (a WebSocket's ping comes with a
    // `noop` event), so silence means a dead connection on every one.
    this.watch = setTimeout(function () { self._failed(conn); }, this.timeout);
  };

  // The data connection `conn` failed (ended, errored, went silent); a stale one is
  // ignored. A WebSocket that never opened in this instance moves on to the next
  // transport at once; everything else reconnects with backoff.
  Comet.prototype._failed = function (conn) {
    if (!conn || this.conn !== conn) return;
    var refused = !!conn.ws && !conn.opened && !this.wsWorked &&
      this.transportIndex < this.order.length - 1;
    this._drop();
    if (refused) {
      this.transportIndex++;
      this.failures = 0;
    }
    this._schedule(refused);
  };

  // One event from any transport.
  Comet.prototype._event = function (ev) {
    this._alive();
    switch (ev.type) {
      case 'hello':
        this.client = ev.client;
        this._opened();
        break;
      case 'data':
        if (!(ev.channel in this.cursor)) return;         // unsubscribed meanwhile
        var next = this.cursor[ev.channel];
        if (next != null && ev.seq < next) return;        // already delivered
        this.cursor[ev.channel] = ev.seq + 1;
        this.onMessage(ev.data, ev.channel, ev.seq);
        break;
      case 'lost':
        if (ev.channel in this.cursor) this.cursor[ev.channel] = ev.to + 1;
        this.onLost(ev.channel, ev.from, ev.to);
        break;
      case 'reset':
        if (ev.channel in this.cursor) this.cursor[ev.channel] = ev.seq;
        this.onLost(ev.channel, null, null);
        break;
      case 'reconnect':
        this._drop();
        this._schedule(true);
        break;
      case 'close':
        if (ev.channel in this.cursor) delete this.cursor[ev.channel];
        if (Object.keys(this.cursor).length === 0) this._finish();
        break;
      case 'error':
        this._failed(this.conn);
        break;
    }
  };

  Comet.prototype._opened = function () {
    if (!this.isOpen) { this.isOpen = true; this._status('open'); }
    this.attempt = 0;
    this.failures = 0;
  };

  Comet.prototype._finish = function () {
    this.closed = true;
    this._drop();
    this._status('closed');
  };

  // Reconnect: at once after a `reconnect` event, else with exponential backoff and
  // jitter. A transport that fails three times in a row without opening gives way to
  // the next one.
  Comet.prototype._schedule = function (now) {
    if (this.closed || this.timer) return;
    var delay = 0;
    if (!now) {
      this.failures++;
      if (this.failures >= 3 && this.transportIndex < this.order.length - 1) {
        this.transportIndex++;
        this.failures = 0;
      }
      delay = Math.min(this.maxDelay, 250 * Math.pow(2, this.attempt++));
      delay = delay / 2 + Math.random() * delay / 2;
      this._status('reconnecting');
    }
    var self = this;
    this.timer = setTimeout(function () { self.timer = null; self._connect(); }, delay);
  };

  Comet.prototype._drop = function () {
    clearTimeout(this.watch);
    this.isOpen = false;
    if (this.conn) { var c = this.conn; this.conn = null; c.stop(); }
  };

  Comet.prototype._connect = function () {
    if (this.closed) return;
    if (Object.keys(this.cursor).length === 0) return;
    this._status('connecting');
    this.conn = this['_' + this.transport()]();
    this._alive();
  };

  // A WebSocket URL for the gateway: ws: or wss: as the page or `url` says.
  function wsUrl(url) {
    if (!/^https?:/i.test(url) && hasDom) {
      var a = document.createElement('a');
      a.href = url;   // resolved against the page
      url = a.href;
    }
    return url.replace(/^http/i, 'ws');
  }

  Comet.prototype._ws = function () {
    var self = this;
    var ws = new WebSocket(wsUrl(this.url + '/ws?' + this._query()));
    var conn = { ws: ws, opened: false, stop: function () {
      ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close(1000);
    } };
    ws.onmessage = function (m) {
      if (self.conn !== conn) return;
      var ev = JSON.parse(m.data);
      if (ev.type === 'hello') { conn.opened = true; self.wsWorked = true; }
      self._event(ev);
    };
    // An error is always followed by close; close alone covers both.
    ws.onclose = function () { self._failed(conn); };
    return conn;
  };

  Comet.prototype._events = function () {
    var self = this;
    var es = new EventSource(this.url + '/events?' + this._query());
    es.onmessage = function (m) { if (self.conn && self.conn.es === es) self._event(JSON.parse(m.data)); };
    // The browser's own retry would resume from Last-Event-ID; ours resumes from the
    // cursor, with backoff, the same way for every transport.
    var conn = { es: es, stop: function () { es.close(); } };
    es.onerror = function () { self._failed(conn); };
    return conn;
  };

  Comet.prototype._stream = function () {
    var self = this;
    var ctl = new AbortController();
    var conn = { stop: function () { ctl.abort(); } };
    fetch(this.url + '/stream?' + this._query(), { signal: ctl.signal }).then(function (resp) {
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      var reader = resp.body.getReader();
      var decoder = new TextDecoder();
      var buf = '';
      function pump() {
        return reader.read().then(function (r) {
          if (self.conn !== conn) return;
          if (r.done) throw new Error('stream ended');
          buf += decoder.decode(r.value, { stream: true });
          var nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            var line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line) self._event(JSON.parse(line));
            if (self.conn !== conn) return;
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () { self._failed(conn); });
    return conn;
  };

  Comet.prototype._iframe = function () {
    var self = this;
    var name = '__comet' + (++counter);
    var frame = document.createElement('iframe');
    var conn = { stop: function () { delete root[name]; frame.remove(); } };
    root[name] = function (ev) { if (self.conn === conn) self._event(ev); };
    frame.style.display = 'none';
    // The stream ends when the document finishes loading.
    frame.onload = function () { self._failed(conn); };
    frame.src = this.url + '/iframe?' + this._query() + '&cb=parent.' + name;
    // A streaming frame never finishes loading: added before the page's own load event it
    // would hold that event (and the spinner) forever, so it waits for it.
    if (document.readyState === 'complete') document.body.appendChild(frame);
    else root.addEventListener('load', function () { if (self.conn === conn) document.body.appendChild(frame); });
    return conn;
  };

  Comet.prototype._poll = function () {
    var self = this;
    var conn = { stop: function () { conn.stopped = true; if (conn.script) conn.script.remove(); } };
    function answer(events) {
      if (self.conn !== conn) return;
      self._opened();
      events.forEach(function (ev) { if (self.conn === conn) self._event(ev); });
      if (self.conn === conn) once();
    }
    function failed() { self._failed(conn); }
    function once() {
      var url = self.url + '/poll?' + self._query() + (self.client ? '&client=' + self.client : '');
      if (!hasDom) {
        fetch(url).then(function (r) {
          if (!r.ok) throw new Error('HTTP ' + r.status);
          var id = r.headers.get('X-Comet-Client');
          if (id) self.client = id;
          return r.json();
        }).then(answer, failed);
        return;
      }
      var name = '__comet' + (++counter);
      var script = document.createElement('script');
      root[name] = function (events) { delete root[name]; script.remove(); answer(events); };
      script.onerror = function () { delete root[name]; script.remove(); failed(); };
      script.src = url + '&cb=' + name;
      conn.script = script;
      document.head.appendChild(script);
    }
    once();
    return conn;
  };

  function control(self, action, query) {
    if (!self.client) {
      // A JSONP poller cannot read its id (a response header): it changes channels by
      // polling again at once with the new set.
      if (self.conn && self.transport() === 'poll') { self._drop(); self._connect(); }
      return Promise.resolve(true);
    }
    var url = self.url + '/clients/' + self.client + '/' + action + (query ? '?' + query : '');
    return fetch(url, { method: 'POST' }).then(function (r) { return r.status === 204; });
  }

  /** Adds a channel (from `seq`, or from now on) without a new data connection. */
  Comet.prototype.subscribe = function (channel, seq) {
    if (channel in this.cursor) return Promise.resolve(true);
    this.cursor[channel] = seq == null ? null : seq;
    if (!this.conn) { this._connect(); return Promise.resolve(true); }
    var q = 'channel=' + encodeURIComponent(channel) + (seq == null ? '' : '&seq=' + seq);
    return control(this, 'subscribe', q);
  };

  /** Removes a channel; its messages stop, the data connection stays. */
  Comet.prototype.unsubscribe = function (channel) {
    if (!(channel in this.cursor)) return Promise.resolve(true);
    delete this.cursor[channel];
    return control(this, 'unsubscribe', 'channel=' + encodeURIComponent(channel));
  };

  /** Ends the subscriber for good. */
  Comet.prototype.close = function () {
    this._finish();
    return control(this, 'close', '');
  };

  root.Comet = Comet;
  if (typeof module === 'object' && module.exports) module.exports = Comet;
})(typeof window !== 'undefined' ? window : globalThis);
