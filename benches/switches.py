#!/usr/bin/env python3
"""One agent, one client, paced requests: per thread of the agent, its
voluntary and involuntary context switches and its CPU per request (from
/proc/PID/task/*/status and schedstat) over COUNT requests, one every
20 ms, so each finds the agent asleep.

  python3 benches/switches.py PORT PID REQUEST COUNT
  e.g. python3 benches/switches.py 3973 $A get_disks 300

An involuntary switch is the agent preempted mid-turn (on this VM, by the
client it has just woken). Needs python3-websockets.
"""
import glob
import sys
import time

from websockets.sync.client import connect


def threads(pid):
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            status = open(t + "/status").read()
            run = open(t + "/schedstat").read().split()
        except OSError:
            continue
        count = {}
        for line in status.splitlines():
            k, _, v = line.partition(":")
            if k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                count[k] = int(v)
        out[t.rsplit("/", 1)[1]] = (count["voluntary_ctxt_switches"],
                                    count["nonvoluntary_ctxt_switches"], int(run[0]))
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    port, pid, req, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as w:
        for _ in range(5):
            w.send(req)
            w.recv()
        a = threads(pid)
        for _ in range(n):
            time.sleep(0.02)
            w.send(req)
            w.recv()
        b = threads(pid)
    for tid, (vol, invol, run) in b.items():
        v0, i0, r0 = a.get(tid, (0, 0, 0))
        print(f"{req}: thread {tid}: {vol - v0} voluntary, {invol - i0} involuntary switches, "
              f"{(run - r0) / n / 1000:.1f} us of CPU per request over {n}")


if __name__ == "__main__":
    main()
