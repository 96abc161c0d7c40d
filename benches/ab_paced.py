#!/usr/bin/env python3
"""Two running agents, one client: paced requests alternate between them,
so both see the same VM at the same moments. Prints each agent's CPU
(every thread, from /proc/PID/task/*/schedstat) per request, and B/A.

  python3 benches/ab_paced.py REQUEST COUNT PACE PORT_A:PID_A PORT_B:PID_B
  e.g. python3 benches/ab_paced.py get_metrics 1000 0.02 3961:$A 3962:$B

Each agent gets one request every PACE seconds (the two are PACE/2 apart):
at that cadence every request finds the agent asleep. For comparing two
builds of the agent where the VM's speed moves more than their
difference (benches/README.md). Needs python3-websockets.
"""
import contextlib
import sys
import time

from websockets.sync.client import connect

from paced import cpu_ns  # benches/paced.py, beside this file


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    req, n, pace = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    agents = [tuple(int(x) for x in a.split(":")) for a in sys.argv[4:]]
    with contextlib.ExitStack() as stack:
        ws = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws", max_size=None))
              for port, _ in agents]
        for w in ws:
            for _ in range(5):
                w.send(req)
                w.recv()
        c0 = [cpu_ns(pid) for _, pid in agents]
        t0 = time.monotonic()
        for k in range(2 * n):
            d = t0 + k * pace / 2 - time.monotonic()
            if d > 0:
                time.sleep(d)
            w = ws[k % 2]
            w.send(req)
            w.recv()
        us = [(cpu_ns(pid) - c) / n / 1000 for (_, pid), c in zip(agents, c0)]
    print(f"{req}: A {us[0]:.1f} us, B {us[1]:.1f} us of agent CPU per request over {n}; B/A {us[1] / us[0]:.3f}")


if __name__ == "__main__":
    main()
