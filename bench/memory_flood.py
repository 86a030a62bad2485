"""Resident memory of hookgate holding unfinished bodies or idle
connections: the figures behind the memory formula in
deploy/kubernetes/README.md ("Memory"). Not part of CI.

  cargo build --release
  python3 bench/memory_flood.py bodies target/release/hookgate 150 1048576
  python3 bench/memory_flood.py connections target/release/hookgate 1000 8000

`bodies N SIZE`: N requests (limits.max_concurrent_requests = N) each send
SIZE - 1 bytes of a SIZE-byte body and stop. `connections N HEADER`: N
connections each send HEADER bytes of an unfinished header. Prints the
idle and the held VmRSS, and the cost of each request or connection.
"""
import os, socket, subprocess, sys, tempfile, time

mode, binary, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


ingress, admin = free_port(), free_port()
d = tempfile.mkdtemp()
config = os.path.join(d, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"""listen: "127.0.0.1:{ingress}"
admin: {{ listen: "127.0.0.1:{admin}" }}
data_dir: "{d}/data"
limits: {{ max_body_bytes: {max(size, 1)}, max_concurrent_requests: {n}, max_connections: {n + 16},
          header_read_timeout: 5m, body_read_timeout: 5m, body_min_rate: 1 }}
routes:
  - {{ name: r, path: /r, ack: async, verify: {{ scheme: none }}, upstream: {{ url: "http://127.0.0.1:1/" }} }}
""")
process = subprocess.Popen([binary, "serve", "--config", config], stderr=subprocess.DEVNULL)


def rss_mib():
    with open(f"/proc/{process.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", ingress)).close()
        break
    except OSError:
        time.sleep(0.05)
time.sleep(1)
idle = rss_mib()
held = []
chunk = b"x" * 65536
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", ingress))
    if mode == "bodies":
        s.sendall(f"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        left = size - 1
        while left > 0:
            s.sendall(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
    else:
        s.sendall(b"POST /r HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size)
    held.append(s)
time.sleep(3)
now = rss_mib()
print(f"{mode}: n={n} size={size} idle={idle:.1f} MiB held={now:.1f} MiB "
      f"each={(now - idle) * 1024 / n:.1f} KiB")
for s in held:
    s.close()
process.terminate()
process.wait()
