#!/usr/bin/env python3
# 200 stream subscribers that never read join a Redis channel with seq=0 whose history is
# 100 messages of 60,000 bytes (6 MB); prints the gateway RSS before and at its peak.
# Loopback only; bounded (10 s of sampling). Usage: loadtest/redis-catchup.py GATEWAY_BINARY
import socket, sys, time, subprocess, os, urllib.request
bin_, port_r = sys.argv[1], 16800
r = subprocess.Popen(["redis-server","--port",str(port_r),"--bind","127.0.0.1","--save","","--appendonly","no"],stdout=subprocess.DEVNULL)
time.sleep(0.3)
g = subprocess.Popen([bin_,"--listen","127.0.0.1:18990","--admin-listen","127.0.0.1:18991","--engine",f"redis://127.0.0.1:{port_r}","--buffer","100","--max-pending-bytes","256k"],stderr=subprocess.DEVNULL)
time.sleep(0.8)
def rss(): return int([l for l in open(f"/proc/{g.pid}/status") if l.startswith("VmRSS")][0].split()[1])
body = b"x"*60000
for i in range(100):
    req = urllib.request.Request("http://127.0.0.1:18991/pub?channel=big", data=body, method="POST")
    urllib.request.urlopen(req).read()
before = rss()
socks=[]
for i in range(200):
    s = socket.create_connection(("127.0.0.1",18990))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /stream?channel=big&seq=0 HTTP/1.1\r\nHost: t\r\n\r\n")
    socks.append(s)
peak=0
for _ in range(20):
    time.sleep(0.5); peak=max(peak, rss())
after = peak
socks[0].settimeout(2)
print(socks[0].recv(300))
import json
st=json.loads(urllib.request.urlopen("http://127.0.0.1:18991/stats").read())
print({k:v for k,v in st.items() if k in ("slow_consumers","stalled","io_errors","connections")}, st.get("messages"))
print(f"{bin_}: RSS {before} KiB -> {after} KiB with 200 non-reading catch-ups of a 6 MB history (+{(after-before)/1024:.0f} MiB)")
for s in socks: s.close()
g.terminate(); r.terminate(); g.wait(); r.wait()
