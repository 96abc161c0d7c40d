#!/usr/bin/env python3
"""Issue 16, item 0: N sequential wss:// connections as a new user would
make them, timing each upgrade answer; any over --slow seconds is listed.

Starts the agent itself (a fresh XDG dir, so its certificate is generated
there and pinned here), or talks to a running one with --port and --cert.

Clients (--client):
  websockets  the Python `websockets` asyncio client (issue 16's), then {"type":"metrics"}
  sync        the `websockets` sync client (issue 25's: it reads on a second
              thread while it writes), then {"type":"metrics"}
  split       a raw ssl socket that writes the upgrade head in --pieces small
              writes with --gap seconds between them
  one         a raw ssl socket that writes the head and a metrics frame in one write
  window      a raw ssl socket with a small receive window and segment size
              (SO_RCVBUF 1024, TCP_MAXSEG 536) that sends its ClientHello,
              then reads nothing for 0.3 s and sends nothing until the
              agent's flight is all in (as OpenSSL does): with a large
              certificate (--cert/--key PATHs passed to the agent through
              --agent-args) the agent's socket fills mid-flight
  all         websockets, split and one in turn, per connection

--tls 12 forces TLS 1.2 (ssl.SSLContext.maximum_version); --load K runs K
busy-loop processes for the whole run, so timing windows widen; --tui
keeps one more wss:// client asking for processes, metrics and disks
without pause, as a TUI left open would (so the agent is busy collecting
while each new connection shakes hands). TLS 1.2 is refused by the agent
(TLS 1.3 only), so --tls 12 checks that it fails at once.

  python3 benches/wss_sequential.py -n 2000 --load 2 --tls 12
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HEAD = (
    "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


def busy():
    while True:
        pass


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


def context(cert, tls):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    ctx.check_hostname = True
    if tls == "12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif tls == "13":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


async def one_websockets(port, ctx, timeout):
    import websockets

    t0 = time.monotonic()
    async with websockets.connect(
        f"wss://localhost:{port}/ws",
        ssl=ctx,
        open_timeout=timeout,
        max_size=None,
        compression=None,
    ) as ws:
        up = time.monotonic() - t0
        await ws.send(json.dumps({"type": "metrics"}))
        await asyncio.wait_for(ws.recv(), timeout)
        return up, time.monotonic() - t0


def one_sync(port, ctx, timeout):
    """The `websockets` sync client (issue 25): its handshake on this
    thread, then a background thread reading while this one writes."""
    from websockets.sync.client import connect

    t0 = time.monotonic()
    with connect(
        f"wss://localhost:{port}/ws",
        ssl=ctx,
        open_timeout=timeout,
        max_size=None,
        compression=None,
    ) as ws:
        up = time.monotonic() - t0
        ws.send(json.dumps({"type": "metrics"}))
        ws.recv(timeout)
        return up, time.monotonic() - t0


def read_head(s, deadline):
    got = b""
    while b"\r\n\r\n" not in got:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        b = s.recv(4096)
        if not b:
            raise ConnectionError("closed before the 101")
        got += b
    head, rest = got.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"not a 101: {head[:80]!r}")
    return rest


def read_frame(s, rest, deadline):
    got = rest
    while True:
        if len(got) >= 2:
            n = got[1] & 0x7F
            off = 2
            if n == 126:
                off = 4
                if len(got) >= 4:
                    n = struct.unpack("!H", got[2:4])[0]
            elif n == 127:
                off = 10
                if len(got) >= 10:
                    n = struct.unpack("!Q", got[2:10])[0]
            if len(got) >= off and len(got) >= off + n:
                return got[off : off + n]
        s.settimeout(max(0.01, deadline - time.monotonic()))
        b = s.recv(65536)
        if not b:
            raise ConnectionError("closed before the answer")
        got += b


def one_raw(port, ctx, timeout, pieces, gap, together):
    t0 = time.monotonic()
    deadline = t0 + timeout
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        key = base64.b64encode(os.urandom(16)).decode()
        head = HEAD.format(key=key).encode()
        frame = masked_text(b'{"type":"metrics"}')
        if together:
            s.sendall(head + frame)
        else:
            step = max(1, len(head) // pieces)
            for i in range(0, len(head), step):
                s.sendall(head[i : i + step])
                if gap:
                    time.sleep(gap)
        rest = read_head(s, deadline)
        up = time.monotonic() - t0
        if not together:
            s.sendall(frame)
        read_frame(s, rest, deadline)
        total = time.monotonic() - t0
        try:
            s.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + b"\x03\xe8")
        except OSError:
            pass
        return up, total


def tui(port, ctx, stop):
    import websockets

    async def run():
        async with websockets.connect(
            f"wss://localhost:{port}/ws", ssl=ctx, max_size=None, compression=None
        ) as ws:
            while not stop.is_set():
                for kind in ("processes", "metrics", "disks"):
                    await ws.send(json.dumps({"type": kind}))
                    await ws.recv()

    asyncio.run(run())


def one_window(port, ctx, timeout):
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    raw.settimeout(timeout)
    raw.connect(("127.0.0.1", port))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = ctx.wrap_bio(inc, out, server_hostname="localhost")
    t0 = time.monotonic()
    with raw:
        try:
            o.do_handshake()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(out.read())
        time.sleep(0.3)
        while True:
            b = raw.recv(65536)
            if not b:
                raise ConnectionError("closed during the handshake")
            inc.write(b)
            try:
                o.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
        key = base64.b64encode(os.urandom(16)).decode()
        o.write(HEAD.format(key=key).encode())
        raw.sendall(out.read())
        got = b""
        while b"\r\n\r\n" not in got:
            b = raw.recv(65536)
            if not b:
                raise ConnectionError("closed before the 101")
            inc.write(b)
            try:
                got += o.read(65536)
            except ssl.SSLWantReadError:
                pass
        if not got.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"not a 101: {got[:80]!r}")
        up = time.monotonic() - t0
        return up, up


def start_agent(binary, xdg, log_path, extra_env, extra_args):
    env = dict(os.environ)
    env.update(
        {
            "XDG_CONFIG_HOME": xdg,
            "RUST_LOG": "debug",
            "SOCKTOP_AGENT_GPU": "0",
        }
    )
    env.update(extra_env)
    log = open(log_path, "w")
    p = subprocess.Popen(
        [binary, "--enableSSL", "--bind", "127.0.0.1", "--port", "0", *extra_args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    port = None
    for line in p.stderr:
        log.write(line)
        m = re.search(r"listening on \w+://[^ ]*:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("the agent did not print its port")

    def pump():
        for line in p.stderr:
            log.write(line)
        log.flush()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return p, port, t, log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--client", default="websockets", choices=["websockets", "sync", "split", "one", "window", "all"])
    ap.add_argument("--tls", default="any", choices=["any", "12", "13"])
    ap.add_argument("--load", type=int, default=0, help="busy-loop processes")
    ap.add_argument("--tui", action="store_true", help="one busy client alongside")
    ap.add_argument("--slow", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=8.0)
    ap.add_argument("--pieces", type=int, default=6)
    ap.add_argument("--gap", type=float, default=0.002)
    ap.add_argument("--agent", default="target/release/sockagent")
    ap.add_argument("--agent-args", default="", help="more agent flags, space-separated")
    ap.add_argument("--port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--log", help="agent log file (default: in the temp dir)")
    a = ap.parse_args()

    xdg = tempfile.mkdtemp(prefix="wss-seq-")
    agent = None
    if a.port:
        port, cert = a.port, a.cert
    else:
        log_path = a.log or os.path.join(xdg, "agent.log")
        extra = a.agent_args.split()
        agent, port, pump, logf = start_agent(a.agent, xdg, log_path, {}, extra)
        cert = os.path.join(xdg, "socktop_agent/tls/cert.pem")
        if "--cert" in extra:
            cert = a.cert or extra[extra.index("--cert") + 1]
    ctx = context(cert, a.tls)
    loaders = [multiprocessing.Process(target=busy, daemon=True) for _ in range(a.load)]
    for p in loaders:
        p.start()

    stop = threading.Event()
    tui_thread = None
    if a.tui:
        tui_thread = threading.Thread(target=tui, args=(port, context(cert, "any"), stop), daemon=True)
        tui_thread.start()
    kinds = ["websockets", "split", "one"] if a.client == "all" else [a.client]
    loop = asyncio.new_event_loop()
    ups, slow, failed = [], [], []
    t_start = time.monotonic()
    try:
        for i in range(a.n):
            kind = kinds[i % len(kinds)]
            try:
                if kind == "sync":
                    up, total = one_sync(port, ctx, a.timeout)
                elif kind == "websockets":
                    up, total = loop.run_until_complete(one_websockets(port, ctx, a.timeout))
                elif kind == "window":
                    up, total = one_window(port, ctx, a.timeout)
                elif kind == "split":
                    up, total = one_raw(port, ctx, a.timeout, a.pieces, a.gap, False)
                else:
                    up, total = one_raw(port, ctx, a.timeout, 1, 0, True)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failed.append((i, kind, f"{type(e).__name__}: {e}"))
                print(f"connection {i} ({kind}): FAILED {type(e).__name__}: {e}", flush=True)
                continue
            ups.append(up)
            if up >= a.slow or total >= a.slow:
                slow.append((i, kind, up, total))
                print(f"connection {i} ({kind}): upgrade {up:.3f} s, answer {total:.3f} s", flush=True)
    finally:
        stop.set()
        if tui_thread:
            tui_thread.join(5)
        for p in loaders:
            p.terminate()
        if agent:
            agent.terminate()
            agent.wait()
            pump.join(2)
            logf.close()
    ups.sort()
    wall = time.monotonic() - t_start
    pct = lambda q: ups[min(len(ups) - 1, int(q * len(ups)))] * 1000 if ups else float("nan")
    print(
        f"{a.n} connections ({a.client}, TLS {a.tls}, load {a.load}, tui {a.tui}) in {wall:.1f} s: "
        f"upgrade p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms; "
        f"{len(slow)} over {a.slow} s, {len(failed)} failed"
    )
    if agent:
        with open(log_path) as f:
            dl = sum(1 for line in f if "deadline passed" in line)
        print(f"agent log {log_path}: {dl} 'deadline passed'")
    sys.exit(1 if slow or failed else 0)


if __name__ == "__main__":
    main()
