#!/usr/bin/env python3
"""Memory of an agent under a TUI-like client.

Starts each agent binary given on a free port, polls it as the socktop TUI
does with one process window open (metrics every 0.5 s, processes every
2 s, disks every 5 s, that process's detail every 0.5 s and its journal
every 5 s, in the legacy request forms the reference answers; with
--main-screen, no process window), then prints
the agent's VmHWM, VmRSS, RssAnon and RssFile from /proc/PID/status, and
each other agent's figures as a ratio to the first one's.

    python3 benches/tui-rss.py [--seconds 60] REFERENCE_BIN BIN [BIN...]
    python3 benches/tui-rss.py --client PORT --seconds 6   # the client alone

Needs Python 3.8+ and the `websockets` package (as the API guide's own
example does). Agents run with their defaults; `SOCKTOP_AGENT_GPU` and the
rest pass through from the environment.
"""
import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import websockets

KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")


async def client(port, seconds, pid, window=True):
    for _ in range(300):
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
            break
        except OSError:
            await asyncio.sleep(0.1)
    else:
        sys.exit(f"no agent on port {port}")
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        asks = ["get_metrics"]
        if window:
            asks.append(f"get_process_metrics:{pid}")
        if tick % 4 == 0:
            asks.append("get_processes")
        if tick % 10 == 0:
            asks.append("get_disks")
            if window:
                asks.append(f"get_journal_entries:{pid}")
        for a in asks:
            await ws.send(a)
            await ws.recv()
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.5 - time.monotonic()))
    await ws.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in KEYS:
                out[k] = int(v.split()[0])
    return out


def measure(binary, seconds, window):
    port = free_port()
    agent = subprocess.Popen([binary, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        asyncio.run(client(port, seconds, agent.pid, window))
        return status(agent.pid)
    finally:
        agent.terminate()
        agent.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--client", type=int, metavar="PORT", help="only poll the agent on PORT")
    p.add_argument("--pid", type=int, default=os.getpid(), help="the process window's pid (--client)")
    p.add_argument("--main-screen", action="store_true",
                   help="no process window: metrics, processes and disks only")
    p.add_argument("bins", nargs="*")
    a = p.parse_args()
    if a.client:
        asyncio.run(client(a.client, a.seconds, a.pid, not a.main_screen))
        return
    if not a.bins:
        p.error("give at least one agent binary")
    window = not a.main_screen
    rows = [(b, measure(b, a.seconds, window)) for b in a.bins]
    what = "with a process window open" if window else "main screen only"
    print(f"after {a.seconds:g} s of TUI-like polling, {what} (KiB):")
    print("| agent | " + " | ".join(KEYS) + " |")
    print("| --- |" + " --- |" * len(KEYS))
    for b, s in rows:
        print(f"| {b} | " + " | ".join(str(s.get(k, "?")) for k in KEYS) + " |")
    base, bs = rows[0]
    for b, s in rows[1:]:
        ratios = ", ".join(f"{k} {s[k] / bs[k]:.3f}" for k in KEYS if bs.get(k) and k in s)
        print(f"{b} / {base}: {ratios}")


if __name__ == "__main__":
    main()
