"""The gateway's /events endpoint read by httpx-sse (with httpx), Python.

    tests/sse/.venv/bin/python tests/sse/httpx_sse_client.py BASE_URL CHANNEL

httpx-sse does not reconnect by itself; `iter_sse_retrying` below is the reconnect loop
its README suggests ("Handling reconnections"): remember `sse.id` as the Last-Event-ID and
`sse.retry` as the reconnection delay, and connect again when the stream breaks. The
README retries with `stamina` on `httpx.ReadError`; this loop has no dependency beyond
httpx-sse and also retries on the other transport errors a killed server causes
(`RemoteProtocolError` for a chunked body cut short, `ConnectError` while it is down) and
on a stream the server ends.

Prints one JSON line per thing the library reports (see tests/sse_common/):
  {"kind":"request","url":…,"lastEventId":…}  a connection attempt
  {"kind":"open","status":…,"contentType":…} / {"kind":"error","message":…}
  {"kind":"message","event":…,"data":RAW,"id":…,"retry":…,"json":PARSED|null,"error":null|TEXT}
Runs until its standard input closes (or for at most 5 minutes).
"""

import json
import sys
import threading
import time

import httpx
from httpx_sse import SSEError, connect_sse

DEADLINE = time.monotonic() + 300


def report(**fields):
    # ensure_ascii: the line is plain ASCII whatever the payload holds.
    sys.stdout.write(json.dumps(fields, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def iter_sse_retrying(client, method, url):
    last_event_id = ""
    reconnection_delay = 0.0
    while time.monotonic() < DEADLINE:
        time.sleep(reconnection_delay)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        report(kind="request", url=url, lastEventId=last_event_id or None)
        try:
            with connect_sse(client, method, url, headers=headers) as event_source:
                report(
                    kind="open",
                    status=event_source.response.status_code,
                    contentType=event_source.response.headers.get("content-type"),
                )
                for sse in event_source.iter_sse():
                    last_event_id = sse.id
                    if sse.retry is not None:
                        reconnection_delay = sse.retry / 1000
                    yield sse
            report(kind="error", message="the server ended the stream")
        except (httpx.TransportError, SSEError) as e:
            report(kind="error", message=f"{type(e).__name__}: {e}")


def read_events(url):
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
            for sse in iter_sse_retrying(client, "GET", url):
                # The handler must never raise: a parse failure is reported, not raised.
                parsed, error = None, None
                try:
                    parsed = json.loads(sse.data)
                except ValueError as e:
                    error = f"{type(e).__name__}: {e}"
                report(
                    kind="message",
                    event=sse.event,
                    data=sse.data,
                    id=sse.id,
                    retry=sse.retry,
                    json=parsed,
                    error=error,
                )
    except Exception as e:  # noqa: BLE001 - anything else is the script's own failure
        report(kind="fatal", message=f"{type(e).__name__}: {e}")


def main():
    base, channel = sys.argv[1], sys.argv[2]
    url = f"{base}/events?channel={channel}"
    threading.Thread(target=read_events, args=(url,), daemon=True).start()
    # Stop when the test closes our standard input (or at the deadline).
    waiter = threading.Thread(target=sys.stdin.read, daemon=True)
    waiter.start()
    waiter.join(max(0.0, DEADLINE - time.monotonic()))


if __name__ == "__main__":
    main()
