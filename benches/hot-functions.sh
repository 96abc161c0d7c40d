#!/bin/sh
# Regenerates packaging/hot-functions.txt: the functions the agent runs
# while it starts and serves a TUI-like client (metrics, processes, disks,
# one process's detail), found with valgrind's callgrind, as demangled
# names. packaging/linker-gcc places them together at the start of .text.
# Needs: valgrind, python3 with the `websockets` package.
# The list is the union over the glibc and the static musl builds (musl's
# own libc functions are in the latter's binary).
#   sh benches/hot-functions.sh [seconds]      (default 6)
set -eu
cd "$(dirname "$0")/.."
secs=${1:-6}
port=39411
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/all"
for target in x86_64-unknown-linux-gnu x86_64-unknown-linux-musl; do
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --quiet --target $target
bin=target/$target/release/sockagent
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/cg" \
    "$bin" --port $port > "$tmp/log" 2>&1 &
vg=$!
python3 - "$port" "$secs" <<'PY'
import asyncio, json, os, sys, time, websockets
port, secs = int(sys.argv[1]), float(sys.argv[2])
async def main():
    for _ in range(300):
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
            break
        except OSError:
            await asyncio.sleep(0.1)
    end = time.monotonic() + secs
    i = 0
    while time.monotonic() < end:
        for r in ["get_metrics", "get_processes"] + (["get_disks"] if i % 3 == 0 else []):
            await ws.send(r)
            await ws.recv()
        await ws.send(json.dumps({"type": "get_metrics"}))
        await ws.recv()
        i += 1
        await asyncio.sleep(0.2)
    await ws.send(json.dumps({"type": "get_process_metrics", "pid": os.getpid()}))
    await ws.recv()
    await ws.close()
asyncio.run(main())
PY
kill -TERM $vg
wait $vg || true
# Every function of our binary that callgrind saw run (fn= and cfn= lines;
# names are given once, then referred to by number).
awk -v bin="$(basename "$bin")" '
    function ref(s, kind,   id, rest) {
        if (!match(s, /^\([0-9]+\)/)) return s
        id = substr(s, 1, RLENGTH); rest = substr(s, RLENGTH + 2)
        if (rest != "") tab[kind, id] = rest
        return tab[kind, id]
    }
    function ours(o) { return o ~ ("/" bin "$") }
    /^ob=/ { ob = ref(substr($0, 4), "o"); cob = ""; next }
    /^cob=/ { cob = ref(substr($0, 5), "o"); next }
    /^fn=/ { n = ref(substr($0, 4), "f"); if (ours(ob)) hot[n] = 1; next }
    /^cfn=/ { n = ref(substr($0, 5), "f"); o = (cob != "") ? cob : ob; cob = ""; if (ours(o)) hot[n] = 1; next }
    END { for (n in hot) { sub(/'"'"'[0-9]+$/, "", n); print n } }
' "$tmp/cg" | sort -u > "$tmp/hot.mangled"
# valgrind's CPU has no AVX-512 or SHA extensions: add the variants that
# crc32 (gzip trailers) and sha1 (the WebSocket handshake) pick on real CPUs.
extra='^(crc32fast::specialized::|sha1::compress::x86::)'
nm --defined-only "$bin" | cut -c 20- > "$tmp/m"
nm -C --defined-only "$bin" | cut -c 20- | paste -d '\t' "$tmp/m" - |
    awk -F '\t' -v extra="$extra" 'NR == FNR { hot[$0] = 1; next }
        ($1 in hot) || $2 ~ extra { print $2 }' "$tmp/hot.mangled" - |
    cat >> "$tmp/all"
done
LC_ALL=C sort -u "$tmp/all" > packaging/hot-functions.txt
echo "packaging/hot-functions.txt: $(wc -l < packaging/hot-functions.txt) functions"
