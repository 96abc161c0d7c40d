#!/usr/bin/env bash
# Checks the agent's NVIDIA GPU readings against nvidia-smi on a machine
# with a real NVIDIA GPU and driver.
#
#   hwtests/gpu-nvidia.sh path/to/release/sockagent
#
# Starts the binary on a free loopback port, asks for metrics over a plain
# WebSocket (python3, standard library only), then compares each NVIDIA
# GPU's name, memory.total, memory.used and temperature.gpu with
#   nvidia-smi --query-gpu=name,memory.total,memory.used,temperature.gpu --format=csv,noheader,nounits
# and prints one verdict line (VERDICT: PASS / FAIL / SKIP ...).
# Exit status: 0 pass, 1 fail, 2 skipped (no nvidia-smi). Under 2 minutes:
# every step has its own timeout.
#
# Tolerances: memory.total within 1 MiB (nvidia-smi rounds down to MiB);
# memory.used within 64 MiB and temperature within 2 C (the two tools
# sample a moment apart); names exactly.
set -euo pipefail

bin=${1:?usage: $0 path/to/release/sockagent}
[ -x "$bin" ] || { echo "VERDICT: FAIL ($bin is not an executable)"; exit 1; }
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "VERDICT: SKIP (no nvidia-smi on this machine)"
  exit 2
fi
command -v python3 >/dev/null 2>&1 || { echo "VERDICT: SKIP (no python3)"; exit 2; }

log=$(mktemp)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

# The agent stops by itself after 90 s whatever happens.
RUST_LOG=info timeout 90 "$bin" --bind 127.0.0.1 --port 0 2>"$log" >/dev/null &
pid=$!
port=
for _ in $(seq 1 200); do # up to 20 s for NVML to load
  port=$(sed -n 's#.*listening on ws://127\.0\.0\.1:\([0-9]*\)/ws.*#\1#p' "$log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "VERDICT: FAIL (the agent did not start; its log follows)"
  cat "$log"
  exit 1
fi

metrics=$(timeout 20 python3 - "$port" <<'PY'
import base64, os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("connection closed during the handshake")
    buf += chunk
head, buf = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("no upgrade: " + head.decode(errors="replace"))
def need(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed mid-frame")
        buf += chunk
    out, buf = buf[:n], buf[n:]
    return out
payload = b"get_metrics"
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
msg = b""
while True:
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(need(2), "big")
    elif n == 127:
        n = int.from_bytes(need(8), "big")
    data = need(n)
    op = b0 & 0x0F
    if op in (9, 10):  # ping/pong: not ours
        continue
    msg += data
    if b0 & 0x80:
        break
if msg[:2] == b"\x1f\x8b":
    import gzip
    msg = gzip.decompress(msg)
sys.stdout.write(msg.decode())
PY
) || { echo "VERDICT: FAIL (no metrics answer over WebSocket)"; exit 1; }

smi=$(timeout 30 nvidia-smi --query-gpu=name,memory.total,memory.used,temperature.gpu --format=csv,noheader,nounits) \
  || { echo "VERDICT: FAIL (nvidia-smi failed)"; exit 1; }
driver=$(timeout 30 nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1 || echo unknown)

echo "agent: $(grep -m1 -E 'NVML (loaded|not loaded)|no NVIDIA GPUs' "$log" | sed 's/^.*\] //' || true)"
echo "nvidia-smi (driver $driver):"
echo "$smi" | sed 's/^/  /'

python3 - "$metrics" "$smi" "$driver" <<'PY'
import json, sys
metrics, smi, driver = sys.argv[1], sys.argv[2], sys.argv[3]
MIB = 1024 * 1024
m = json.loads(metrics)
agent = [g for g in (m.get("gpus") or []) if g.get("vendor") == "nvidia"]
rows = [[c.strip() for c in line.split(",")] for line in smi.strip().splitlines() if line.strip()]
problems = []
if len(agent) != len(rows):
    problems.append("agent lists %d NVIDIA GPU(s), nvidia-smi %d" % (len(agent), len(rows)))
def num(v):
    try:
        return float(v)
    except ValueError:
        return None  # "[N/A]"
for i, (g, r) in enumerate(zip(agent, rows)):
    name, total, used, temp = r[0], num(r[1]), num(r[2]), num(r[3])
    if g.get("name") != name:
        problems.append("gpu%d name %r vs %r" % (i, g.get("name"), name))
    at = g.get("memory_total")
    if total is not None and (at is None or abs(at / MIB - total) > 1):
        problems.append("gpu%d memory.total %s MiB vs %s" % (i, None if at is None else at // MIB, r[1]))
    au = g.get("memory_used")
    if used is not None and (au is None or abs(au / MIB - used) > 64):
        problems.append("gpu%d memory.used %s MiB vs %s" % (i, None if au is None else au // MIB, r[2]))
    tc = g.get("temp_c")
    if temp is not None and (tc is None or abs(tc - temp) > 2):
        problems.append("gpu%d temperature %s C vs %s" % (i, tc, r[3]))
    if g.get("utilization") != g.get("usage") or g.get("mem_used") != au or g.get("mem_total") != at:
        problems.append("gpu%d alias keys differ from the guide's keys" % i)
names = ", ".join(dict.fromkeys(r[0] for r in rows)) or "none"
what = "%d GPU(s) [%s], driver %s" % (len(rows), names, driver)
if problems:
    print("VERDICT: FAIL %s: %s" % (what, "; ".join(problems)))
    sys.exit(1)
print("VERDICT: PASS %s: name, memory.total, memory.used, temperature.gpu match nvidia-smi" % what)
PY
