#!/usr/bin/env python3
"""What remote-write costs the agent, against what a Prometheus scrape of the
same families costs it, in one run on one machine (issue 27, item 7).

Three agents of the same build run side by side for SECONDS each:
  push   --remote-write to a local endpoint (this script), every INTERVAL
  scrape no push; this script GETs /metrics (gzip) every INTERVAL
  idle   no push, no scrape (the floor: the history ring's tick alone)
and the script prints, from /proc/PID/stat and /proc/PID/status, each one's
CPU (schedstat, every thread) and VmRSS, the CPU per push and per scrape above the idle floor, and the
bytes on the wire per push and per scrape (and per hour at that interval).

  python3 benches/remote_write_cost.py --bin target/release/sockagent
  python3 benches/remote_write_cost.py --bin target/release/sockagent --seconds 60 --interval-ms 15000
"""
import argparse
import gzip
import http.server
import os
import socket
import subprocess
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Sink(http.server.BaseHTTPRequestHandler):
    """The remote-write endpoint: counts POSTs and their body bytes."""

    posts = 0
    body_bytes = 0

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        Sink.posts += 1
        Sink.body_bytes += n
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


def cpu_s(pid):
    """On-CPU time of every thread (schedstat: nanoseconds, not ticks)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e9


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(binary, port, extra, env_extra):
    env = dict(os.environ, RUST_LOG="warn", SOCKTOP_AGENT_GPU="0", **env_extra)
    p = subprocess.Popen([binary, "--port", str(port), *extra], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{binary} did not listen on {port}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sockagent")
    ap.add_argument("--seconds", type=int, default=45)
    ap.add_argument("--interval-ms", type=int, default=1000)
    a = ap.parse_args()
    sink_port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", sink_port), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink_port}/api/v1/write"
    ports = [free_port() for _ in range(3)]
    push = start(a.bin, ports[0], ["--remote-write", url],
                 {"SOCKAGENT_REMOTE_WRITE_INTERVAL_MS": str(a.interval_ms)})
    scrape = start(a.bin, ports[1], [], {})
    idle = start(a.bin, ports[2], [], {})
    agents = {"push": push, "scrape": scrape, "idle": idle}
    time.sleep(2)  # the first push and the ring's first ticks
    c0 = {k: cpu_s(p.pid) for k, p in agents.items()}
    posts0, bytes0 = Sink.posts, Sink.body_bytes
    scrapes, scrape_bytes = 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.seconds:
        req = urllib.request.Request(f"http://127.0.0.1:{ports[1]}/metrics",
                                     headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as r:
            scrape_bytes += len(r.read())
        scrapes += 1
        time.sleep(a.interval_ms / 1000)
    cpu = {k: cpu_s(p.pid) - c0[k] for k, p in agents.items()}
    rss = {k: rss_kb(p.pid) for k, p in agents.items()}
    posts, body = Sink.posts - posts0, Sink.body_bytes - bytes0
    for p in agents.values():
        p.terminate()
        p.wait()
    srv.shutdown()
    per_hour = 3600 * 1000 / a.interval_ms
    print(f"remote_write_cost: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{a.seconds} s, every {a.interval_ms} ms, {os.cpu_count()} CPUs, {a.bin}")
    print("| agent | CPU | VmRSS |")
    print("| --- | --- | --- |")
    for k in agents:
        print(f"| {k} | {cpu[k] * 1000:.1f} ms | {rss[k]} kB |")
    push_ms = (cpu["push"] - cpu["idle"]) * 1000 / max(posts, 1)
    scrape_ms = (cpu["scrape"] - cpu["idle"]) * 1000 / max(scrapes, 1)
    print(f"pushes {posts}, {body / max(posts, 1):.0f} B each on the wire "
          f"({body / max(posts, 1) * per_hour / 1e6:.2f} MB an hour)")
    print(f"scrapes {scrapes}, {scrape_bytes / max(scrapes, 1):.0f} B each gzipped "
          f"({scrape_bytes / max(scrapes, 1) * per_hour / 1e6:.2f} MB an hour)")
    print(f"CPU above idle: {push_ms:.2f} ms a push, {scrape_ms:.2f} ms a scrape, "
          f"ratio {push_ms / scrape_ms if scrape_ms > 0 else float('nan'):.2f}")
    print(f"RSS, push on against off (idle): {rss['push'] - rss['idle']:+d} kB")


if __name__ == "__main__":
    main()
