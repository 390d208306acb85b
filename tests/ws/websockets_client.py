"""The gateway's /ws endpoint read by Python's `websockets` (its asyncio client).

    tests/ws/.venv/bin/python tests/ws/websockets_client.py

Driven by one JSON command per line on standard input (see tests/ws_common/):
  {"op":"open","base":"ws://HOST:PORT","channel":"a,b","seq":"8,3","token":T|null,"reconnect":BOOL}
  {"op":"send","text":…}   one text frame to the gateway (a subscribe/unsubscribe/close command)
  {"op":"pause"} / {"op":"resume"}   stop / go on reading (websockets then stops reading the
                                     socket once its queue of max_queue messages is full)
`connect()` can reconnect by itself when iterated, but always to the same URI; the cursor
must change with every message, so this script runs its own loop when `reconnect` is set:
after a close it waits (200 ms doubling to 2 s) and opens /ws again with the cursor it kept
(from `hello`, then `data`/`lost`/`reset`, and the channels it subscribed or unsubscribed),
or the one a `reconnect` event gave. The client's own keepalive pings are off
(ping_interval=None): a paused client would otherwise time itself out; the gateway's pings
are answered by the library.
Prints one JSON line per thing the library reports:
  {"kind":"request","url":…}  {"kind":"open"}  {"kind":"refused","status":N}
  {"kind":"message","data":RAW,"json":PARSED|null,"error":null|TEXT}
  {"kind":"close","code":N|null,"reason":…}  {"kind":"error","message":…}
Runs until its standard input closes (or for at most 5 minutes).
"""

import asyncio
import json
import sys
import threading
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def report(**fields):
    # ensure_ascii: the line is plain ASCII whatever the payload holds.
    sys.stdout.write(json.dumps(fields, ensure_ascii=True) + "\n")
    sys.stdout.flush()


class Client:
    def __init__(self):
        self.opts = None
        self.ws = None
        self.cursor = {}  # channel -> next seq wanted (None: from now on), in order
        self.reading = asyncio.Event()
        self.reading.set()

    def url(self):
        names = list(self.cursor)
        seqs = ["" if self.cursor[n] is None else str(self.cursor[n]) for n in names]
        u = f"{self.opts['base']}/ws?channel={','.join(names)}&seq={','.join(seqs)}"
        if self.opts.get("token"):
            u += "&token=" + quote(self.opts["token"], safe="")
        return u

    def set_cursor(self, text):
        self.cursor = {}
        for part in filter(None, text.split(",")):
            name, _, seq = part.partition(":")
            self.cursor[name] = int(seq) if seq else None

    def follow(self, ev):
        t, ch = ev.get("type"), ev.get("channel")
        if t in ("hello", "reconnect"):
            self.set_cursor(ev["cursor"])
        elif t == "data" and ch in self.cursor:
            self.cursor[ch] = ev["seq"] + 1
        elif t == "lost" and ch in self.cursor:
            self.cursor[ch] = ev["to"] + 1
        elif t == "reset" and ch in self.cursor:
            self.cursor[ch] = ev["seq"]
        elif t == "close":
            self.cursor.pop(ch, None)

    async def run(self):
        delay = 0.2
        while True:
            u = self.url()
            report(kind="request", url=u)
            try:
                async with connect(u, ping_interval=None, max_size=2**20) as ws:
                    self.ws = ws
                    report(kind="open")
                    while True:
                        await self.reading.wait()
                        raw = await ws.recv()
                        self.message(raw)
                        delay = 0.2
            except InvalidStatus as e:
                report(kind="refused", status=e.response.status_code)
            except ConnectionClosed as e:
                rcvd = e.rcvd
                report(
                    kind="close",
                    code=rcvd.code if rcvd else None,
                    reason=rcvd.reason if rcvd else "",
                )
            except OSError as e:
                report(kind="error", message=f"{type(e).__name__}: {e}")
            finally:
                self.ws = None
            if not self.opts.get("reconnect"):
                return
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    def message(self, raw):
        # The handler must never raise: a parse failure is reported, not raised.
        if isinstance(raw, bytes):
            report(kind="message", data=None, json=None, error="a binary message")
            return
        parsed, error = None, None
        try:
            parsed = json.loads(raw)
            self.follow(parsed)
        except ValueError as e:
            error = f"{type(e).__name__}: {e}"
        report(kind="message", data=raw, json=parsed, error=error)

    async def command(self, line):
        c = json.loads(line)
        op = c["op"]
        if op == "open":
            self.opts = c
            seqs = (c.get("seq") or "").split(",")
            for i, name in enumerate(c["channel"].split(",")):
                s = seqs[i] if i < len(seqs) else ""
                self.cursor[name] = int(s) if s else None
            asyncio.get_running_loop().create_task(self.run())
        elif op == "send":
            cmd = json.loads(c["text"])
            names = [n for n in str(cmd.get("channel", "")).split(",") if n]
            seqs = str(cmd.get("seq", "")).split(",")
            if cmd.get("type") == "subscribe":
                for i, n in enumerate(names):
                    s = seqs[i] if i < len(seqs) else ""
                    self.cursor.setdefault(n, int(s) if s else None)
            elif cmd.get("type") == "unsubscribe":
                for n in names:
                    self.cursor.pop(n, None)
            if self.ws is None:
                report(kind="error", message="send: not open")
            else:
                await self.ws.send(c["text"])
        elif op == "pause":
            self.reading.clear()
        elif op == "resume":
            self.reading.set()
        else:
            report(kind="fatal", message=f"unknown command {line}")


async def main():
    loop = asyncio.get_running_loop()
    lines = asyncio.Queue()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    client = Client()
    while True:
        try:
            line = await asyncio.wait_for(lines.get(), 300)
        except asyncio.TimeoutError:
            report(kind="fatal", message="ran for 5 minutes without being stopped")
            return
        if line is None:
            return
        if not line.strip():
            continue
        try:
            await client.command(line)
        except Exception as e:  # noqa: BLE001 - the script's own failure
            report(kind="fatal", message=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    asyncio.run(main())
