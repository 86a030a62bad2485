#!/usr/bin/env python3
"""Soak test: hookgate under mixed, partly hostile load with upstream outages.

Not part of the test suite. Runs the release binary with an async TruTac
route (dedup by event id) and a sync route, drives them for DURATION seconds
with valid events, duplicates, bad signatures, oversized bodies and slow
senders, takes the upstream down for OUTAGE seconds every OUTAGE_EVERY
seconds, and prints per minute: requests by outcome, p99 ack latency of
valid async events, hookgate's RSS and open file descriptors. At the end it
waits for delivery and compares the ids hookgate acknowledged with the ids
the upstream received (they must match: nothing acknowledged is lost).

    python3 bench/soak.py            # DURATION=600 by default
    DURATION=60 python3 bench/soak.py

Standard library only; traffic stays on 127.0.0.1.
"""
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

DURATION = int(os.environ.get("DURATION", "600"))
WORKERS = int(os.environ.get("WORKERS", "8"))
OUTAGE_EVERY = int(os.environ.get("OUTAGE_EVERY", "120"))
OUTAGE = int(os.environ.get("OUTAGE", "30"))
SECRET = b"soak-secret"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Upstream:
    """A consumer that records delivery ids; can be taken down and back up."""

    def __init__(self, port):
        self.port = port
        self.ids = set()
        self.lock = threading.Lock()
        self.server = None
        self.healthy = True

    def up(self):
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                if not upstream.healthy:
                    # An outage: refuse, and drop the kept-alive connection.
                    self.send_response(503)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                delivery = self.headers.get("Hookgate-Delivery-Id")
                if delivery:
                    with upstream.lock:
                        upstream.ids.add(delivery)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.healthy = True
        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        # New connections are refused, and requests on pooled ones get 503.
        self.healthy = False
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def sign(body):
    return "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {}
        self.latencies = []
        self.acked = []

    def count(self, what):
        with self.lock:
            self.outcomes[what] = self.outcomes.get(what, 0) + 1

    def take(self):
        with self.lock:
            outcomes, latencies = self.outcomes, self.latencies
            self.outcomes, self.latencies = {}, []
            return outcomes, latencies


def worker(port, stats, stop, seen):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        kind = random.random()
        try:
            if kind < 0.60:
                event_id = f"{threading.get_ident()}-{n}-{random.random()}"
                body = json.dumps({"id": event_id, "action": "clocking.created", "pad": "x" * 1200}).encode()
                started = time.monotonic()
                conn.request("POST", "/hooks/trutac", body, {"TT-Hook-Signature": sign(body), "Content-Type": "application/json"})
                r = conn.getresponse()
                answer = r.read()
                took = time.monotonic() - started
                if r.status == 200:
                    delivery = json.loads(answer)["id"]
                    with stats.lock:
                        stats.acked.append(delivery)
                        stats.latencies.append(took)
                    seen.append(body)
                stats.count(f"valid {r.status}")
            elif kind < 0.70 and seen:
                body = random.choice(seen[-500:])
                conn.request("POST", "/hooks/trutac", body, {"TT-Hook-Signature": sign(body)})
                r = conn.getresponse()
                r.read()
                dup = r.getheader("Hookgate-Duplicate") == "true"
                stats.count(f"duplicate {r.status}{' dup' if dup else ''}")
            elif kind < 0.80:
                body = b'{"id":"forged"}'
                conn.request("POST", "/hooks/trutac", body, {"TT-Hook-Signature": "sha1=" + "0" * 40})
                r = conn.getresponse()
                r.read()
                stats.count(f"bad-signature {r.status}")
            elif kind < 0.85:
                body = b"x" * (1024 * 1024 + 1)
                conn.request("POST", "/hooks/trutac", body, {"TT-Hook-Signature": sign(body)})
                r = conn.getresponse()
                r.read()
                stats.count(f"oversized {r.status}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elif kind < 0.88:
                # A slow sender: head, then a stalled body.
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nab")
                s.settimeout(30)
                try:
                    data = s.recv(100)
                    stats.count("slow " + (data.split(b" ")[1].decode() if data else "closed"))
                except socket.timeout:
                    stats.count("slow never-cut-off")
                s.close()
            else:
                body = json.dumps({"sync": n, "r": random.random()}).encode()
                conn.request("POST", "/hooks/sync", body, {"X-Secret": "soak-sync"})
                r = conn.getresponse()
                r.read()
                stats.count(f"sync {r.status}")
        except (OSError, http.client.HTTPException) as e:
            stats.count(f"client-error {type(e).__name__}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "hookgate")
    work = tempfile.mkdtemp(prefix="hookgate-soak-")
    port, admin, up_port = free_port(), free_port(), free_port()
    upstream = Upstream(up_port)
    upstream.up()
    config = f"""
listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
data_dir: "{work}/data"
log: {{ level: "warn" }}
limits: {{ body_read_timeout: 5s, header_read_timeout: 5s }}
routes:
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["{SECRET.decode()}"] }}
    events: {{ allow: ["*"], ack_only: [] }}
    dedup: {{ key: "{{json:/id}}" }}
    upstream:
      url: "http://127.0.0.1:{up_port}/trutac"
      timeout: 5s
      retry: {{ max_attempts: 1000, initial_backoff: 200ms, max_backoff: 5s }}
  - name: sync
    path: /hooks/sync
    ack: sync
    dedup: off
    verify: {{ scheme: header, header: X-Secret, secrets: ["soak-sync"] }}
    upstream: {{ url: "http://127.0.0.1:{up_port}/sync", timeout: 5s }}
"""
    path = os.path.join(work, "hookgate.yaml")
    with open(path, "w") as f:
        f.write(config)
    gateway = subprocess.Popen([binary, "serve", "-c", path])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)
    print(f"idle RSS {rss_kib(gateway.pid) / 1024:.1f} MiB, fds {len(os.listdir(f'/proc/{gateway.pid}/fd'))}")

    stats, stop, seen = Stats(), threading.Event(), []
    threads = [threading.Thread(target=worker, args=(port, stats, stop, seen), daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    started = time.monotonic()
    minute = 0
    down = False
    print("minute | requests by outcome | p99 ack ms (valid async) | RSS MiB | fds | upstream")
    while time.monotonic() - started < DURATION:
        time.sleep(1)
        elapsed = time.monotonic() - started
        in_outage = (elapsed % OUTAGE_EVERY) > (OUTAGE_EVERY - OUTAGE)
        if in_outage and not down:
            upstream.down()
            down = True
        elif not in_outage and down:
            upstream.up()
            down = False
        if int(elapsed) // 60 > minute or time.monotonic() - started >= DURATION:
            minute += 1
            outcomes, lat = stats.take()
            lat.sort()
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan")
            fds = len(os.listdir(f"/proc/{gateway.pid}/fd"))
            print(f"{minute:>6} | {dict(sorted(outcomes.items()))} | {p99:.2f} | {rss_kib(gateway.pid) / 1024:.1f} | {fds} | {'down' if down else 'up'}", flush=True)
    stop.set()
    for t in threads:
        t.join()
    if down:
        upstream.up()
    acked = set(stats.acked)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with upstream.lock:
            missing = acked - upstream.ids
        if not missing:
            break
        time.sleep(1)
    with upstream.lock:
        delivered = acked & upstream.ids
    print(f"acked {len(acked)}, delivered {len(delivered)}, lost {len(acked - upstream.ids)}")
    gateway.terminate()
    gateway.wait(timeout=60)
    sys.exit(0 if acked <= upstream.ids else 1)


if __name__ == "__main__":
    main()
