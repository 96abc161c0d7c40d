#!/usr/bin/env python3
"""A long run with nothing lost: the agent under a changing crowd.

Starts the agent given (default target/release/sockagent) on a free port
and, for --minutes (default 30):

- 200 clients that connect, poll at the guide's intervals (metrics 0.5 s,
  processes 2 s, disks 5 s) for a random 5-60 s, disconnect, and come back;
  every request must be answered, in order, with the kind asked for;
- 5 clients that send requests and never read;
- 20 processes started and ended per second on the machine;
- one /metrics scrape every 5 s;
- with --tls, all of it over wss:// and https:// (the agent's own
  self-signed certificate, pinned).

Every 10 s it samples the agent's RSS, its open socket and file
descriptors, its CPU time and the answers' latency. At the end it prints
the figures, draws them into a PNG (--png, default target/soak.png; needs
matplotlib) and exits non-zero unless: every request was answered in
order; RSS and socket fds are back within 5 % of their level after the
first minute; p99 latency is under 50 ms.

    python3 benches/soak.py [--minutes 30] [--tls] [--bin PATH] [--png PATH]

Needs Python 3.8+ with the `websockets` package (as the API guide's own
example does), and matplotlib for the picture.
"""
import argparse
import asyncio
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

CLIENTS = 200
DEAF = 5
SPAWNS_PER_S = 20
INTERVALS = {"get_metrics": 0.5, "get_processes": 2.0, "get_disks": 5.0}
SAMPLE_EVERY = 10.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Stats:
    def __init__(self):
        self.sent = 0
        self.answered = 0
        self.wrong = []
        self.latencies = []  # seconds, every answer
        # this sampling window's: swapped out by the sampler, so it never
        # scans the whole run (a scan of a million answers every 10 s would
        # stall the clients' event loop and show up as their latency)
        self.window = []
        self.scrapes = 0
        self.scrape_failures = []
        self.connect_failures = []


def kind_of(msg):
    if isinstance(msg, (bytes, bytearray)):
        return "get_processes"
    v = json.loads(msg)
    if isinstance(v, list):
        return "get_disks"
    if isinstance(v, dict) and "cpu_total" in v:
        return "get_metrics"
    return "error: " + str(v)[:80]


async def client(url, ctx, stats, stop, rng):
    while time.monotonic() < stop:
        life = rng.uniform(5, 60)
        end = min(stop, time.monotonic() + life)
        try:
            async with websockets.connect(url, ssl=ctx, open_timeout=10, max_size=None) as ws:
                due = {k: time.monotonic() + rng.uniform(0, v) for k, v in INTERVALS.items()}
                while time.monotonic() < end:
                    now = time.monotonic()
                    ready = sorted(k for k, t in due.items() if t <= now)
                    if not ready:
                        await asyncio.sleep(max(0.0, min(due.values()) - now))
                        continue
                    # pipelined: every due request goes out, then the answers
                    # must come back in the same order
                    t0 = time.monotonic()
                    for k in ready:
                        await ws.send(k)
                        stats.sent += 1
                        due[k] = t0 + INTERVALS[k]
                    for k in ready:
                        msg = await asyncio.wait_for(ws.recv(), 10)
                        got = kind_of(msg)
                        stats.answered += 1
                        if got != k:
                            stats.wrong.append((k, got))
                        lat = time.monotonic() - t0
                        stats.latencies.append(lat)
                        stats.window.append(lat)
        except Exception as e:  # a failed connection is a finding
            stats.connect_failures.append(repr(e)[:120])
            await asyncio.sleep(1)


async def deaf(url, ctx, stop):
    """Sends requests and never reads: the agent must drop it at its
    output cap, never queue without bound."""
    while time.monotonic() < stop:
        try:
            async with websockets.connect(url, ssl=ctx, open_timeout=10, max_queue=1) as ws:
                while time.monotonic() < stop:
                    await ws.send("get_processes")
                    await asyncio.sleep(0.05)
        except Exception:
            await asyncio.sleep(1)


async def spawner(stop):
    while time.monotonic() < stop:
        t0 = time.monotonic()
        procs = [await asyncio.create_subprocess_exec("true") for _ in range(SPAWNS_PER_S)]
        for p in procs:
            await p.wait()
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))


async def scraper(port, ctx, stats, stop):
    while time.monotonic() < stop:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                        server_hostname="localhost" if ctx else None), 10)
            w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            body = await asyncio.wait_for(r.read(), 10)
            w.close()
            if not body.startswith(b"HTTP/1.1 200"):
                stats.scrape_failures.append(body[:60])
            stats.scrapes += 1
        except Exception as e:
            stats.scrape_failures.append(repr(e)[:120])
        await asyncio.sleep(5)


def agent_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    rss = int(st["VmRSS"].split()[0])
    anon = int(st["RssAnon"].split()[0])
    file_ = int(st["RssFile"].split()[0])
    socks = files = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:"):
            socks += 1
        else:
            files += 1
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / hz
    return rss, anon, file_, socks, files, cpu


def p99(xs):
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(round((len(s) - 1) * 0.99)))]


async def sampler(pid, stats, stop, rows, t_start):
    last_cpu = None
    while time.monotonic() < stop:
        await asyncio.sleep(SAMPLE_EVERY)
        rss, anon, file_, socks, files, cpu = agent_sample(pid)
        window, stats.window = stats.window, []
        cpu_pct = 0.0 if last_cpu is None else (cpu - last_cpu) / SAMPLE_EVERY * 100
        last_cpu = cpu
        rows.append({
            "t": time.monotonic() - t_start, "rss_kib": rss, "anon_kib": anon,
            "file_kib": file_, "sockets": socks,
            "files": files, "cpu_pct": cpu_pct, "p99_ms": p99(window) * 1000,
            "answered": stats.answered,
        })
        r = rows[-1]
        print(f"{r['t']:7.0f} s  rss {rss} KiB (anon {anon}, file {file_})  sockets {socks}  files {files}  "
              f"cpu {cpu_pct:5.1f} %  p99 {r['p99_ms']:6.1f} ms  answers {stats.answered}",
              flush=True)


def draw(rows, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no picture", file=sys.stderr)
        return
    t = [r["t"] / 60 for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    ax[0].plot(t, [r["rss_kib"] for r in rows], label="RSS")
    ax[0].plot(t, [r["anon_kib"] for r in rows], label="anonymous")
    ax[0].plot(t, [r["file_kib"] for r in rows], label="file (code)")
    ax[0].legend(); ax[0].set_ylabel("KiB")
    ax[1].plot(t, [r["sockets"] for r in rows], label="sockets")
    ax[1].plot(t, [r["files"] for r in rows], label="kept files"); ax[1].legend(); ax[1].set_ylabel("fds")
    ax[2].plot(t, [r["cpu_pct"] for r in rows]); ax[2].set_ylabel("agent CPU %")
    ax[3].plot(t, [r["p99_ms"] for r in rows]); ax[3].set_ylabel("p99 ms"); ax[3].set_xlabel("minutes")
    for a in ax:
        a.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"picture: {path}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--bin", default="target/release/sockagent")
    ap.add_argument("--png", default="target/soak.png")
    a = ap.parse_args()
    port = free_port()
    xdg = tempfile.mkdtemp(prefix="soak-")
    env = dict(os.environ, XDG_CONFIG_HOME=xdg, RUST_LOG="warn", SOCKTOP_AGENT_GPU="0")
    args = [a.bin, "--bind", "127.0.0.1", "--port", str(port)] + (["--enableSSL"] if a.tls else [])
    agent = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx = None
        if a.tls:
            ctx = ssl.create_default_context(cafile=f"{xdg}/socktop_agent/tls/cert.pem")
            ctx.check_hostname = False
        url = f"{'wss' if a.tls else 'ws'}://127.0.0.1:{port}/ws"
        stats, rows = Stats(), []
        t_start = time.monotonic()
        stop = t_start + a.minutes * 60
        rng = random.Random(42)
        tasks = [client(url, ctx, stats, stop, random.Random(rng.random())) for _ in range(CLIENTS)]
        tasks += [deaf(url, ctx, stop) for _ in range(DEAF)]
        tasks += [spawner(stop), scraper(port, ctx, stats, stop),
                  sampler(agent.pid, stats, stop, rows, t_start)]
        await asyncio.gather(*tasks)
        alive = agent.poll() is None
    finally:
        agent.terminate()
        agent.wait()
    lat = stats.latencies
    after_1min = [r for r in rows if r["t"] >= 60] or rows
    base = after_1min[0] if after_1min else None
    end = rows[-1] if rows else None
    print(f"\n{a.minutes:g} min{' over TLS' if a.tls else ''}: {stats.sent} requests, "
          f"{stats.answered} answered, {len(stats.wrong)} wrong or out of order, "
          f"{stats.scrapes} scrapes ({len(stats.scrape_failures)} failed), "
          f"{len(stats.connect_failures)} failed connections")
    p50 = sorted(lat)[len(lat) // 2] if lat else 0.0
    print(f"latency p50 {p50*1000:.1f} ms, "
          f"p99 {p99(lat)*1000:.1f} ms, max {max(lat, default=0)*1000:.1f} ms")
    ok = (alive and stats.answered > 0 and not stats.wrong and not stats.scrape_failures
          and not stats.connect_failures)
    if base and end:
        rss_ok = end["rss_kib"] <= base["rss_kib"] * 1.05
        sock_ok = end["sockets"] <= max(base["sockets"] * 1.05, base["sockets"] + 2)
        print(f"RSS after 1 min {base['rss_kib']} KiB (anon {base['anon_kib']}, file {base['file_kib']}), "
              f"at the end {end['rss_kib']} KiB (anon {end['anon_kib']}, file {end['file_kib']}); "
              f"sockets {base['sockets']} -> {end['sockets']}; kept files {base['files']} -> {end['files']}")
        ok = ok and rss_ok and sock_ok
    ok = ok and p99(lat) < 0.050
    draw(rows, a.png, f"sockagent soak, {a.minutes:g} min{' (TLS)' if a.tls else ''}")
    if stats.connect_failures:
        print("failed connections (first 5):", stats.connect_failures[:5])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
