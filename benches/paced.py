#!/usr/bin/env python3
"""Paced requests to a running agent: its CPU (every thread, from
/proc/PID/task/*/schedstat) per request, one request every PACE seconds.

  python3 benches/paced.py PORT REQUEST COUNT PACE PID
  e.g. python3 benches/paced.py 3000 get_disks 300 0.02 $(pgrep -x sockagent)

Start the agent with caches off to measure collections
(SOCKTOP_AGENT_{METRICS,DISKS,PROCESSES}_TTL_MS=0). Needs python3-websockets.
"""
import glob
import sys
import time

from websockets.sync.client import connect


def cpu_ns(pid):
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            t += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return t


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    port, req, n, pace, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        for _ in range(5):
            ws.send(req)
            ws.recv()
        c0, t0 = cpu_ns(pid), time.monotonic()
        for k in range(n):
            d = t0 + k * pace - time.monotonic()
            if d > 0:
                time.sleep(d)
            ws.send(req)
            ws.recv()
        c1 = cpu_ns(pid)
    print(f"{req}: {(c1 - c0) / n / 1e3:.1f} us of agent CPU per request over {n}")


if __name__ == "__main__":
    main()
