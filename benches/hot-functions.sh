#!/bin/sh
# Regenerates packaging/hot-functions.txt: the functions the agent runs
# while it starts and serves a TUI-like client (benches/tui-rss.py: metrics,
# processes, disks, one process's detail and journal, for another process
# and for the agent itself), found with valgrind's
# callgrind, as demangled names. packaging/linker-gcc places them together
# at the start of .text. The list is the union over the glibc and the
# static musl builds (musl's own libc functions are in the latter's binary).
# Needs: valgrind, python3 with the `websockets` package.
#   sh benches/hot-functions.sh [seconds]           (default 6)
#   sh benches/hot-functions.sh --check [seconds]   the list left as it is;
#       prints the functions that ran but are not in it, and fails if any
# A stale list breaks nothing, it only costs memory: each function left out
# can cost a 64 KiB window of resident code (benches/README.md, "Code
# layout": 11 names left out cost 512 KiB of the musl build's 2 220).
set -eu
cd "$(dirname "$0")/.."
check=
if [ "${1:-}" = --check ]; then check=1; shift; fi
secs=${1:-6}
port=39411
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/all"
# `cargo build --release` as the README builds it (glibc), and static musl.
for target in "" x86_64-unknown-linux-musl; do
# The release build itself, relinked with its symbols (packaging/linker-gcc):
# a build with other settings could inline other functions.
touch src/main.rs
SOCKAGENT_LINK_SYMBOLS=1 cargo build --release --quiet ${target:+--target $target}
bin=target/${target:-.}/release/sockagent
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/cg" \
    "$bin" --port $port > "$tmp/log" 2>&1 &
vg=$!
# The process window on another process (the client), then on the agent
# itself, as benches/tui-rss.py measures it: each reads its own files.
python3 benches/tui-rss.py --client $port --seconds "$secs"
python3 benches/tui-rss.py --client $port --seconds "$secs" --pid $vg
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
# Also what runs before main, which callgrind reports as "(below main)":
# _start and, in the static musl build, musl's __libc_start_main. And
# musl's thread exit, which runs when a statvfs worker is let go (a round
# past its deadline, or the agent's shutdown): whether a 6 s run sees one
# is a matter of timing.
extra='^(crc32fast::specialized::|sha1::compress::x86::|<std::process::Child>::kill$|_start$|__libc_start_main$|pthread_exit$|__pthread_tsd_run_dtors$|__dl_thread_cleanup$|__vm_lock$|__vm_unlock$)'
nm --defined-only "$bin" | cut -c 20- > "$tmp/m"
nm -C --defined-only "$bin" | cut -c 20- | paste -d '\t' "$tmp/m" - |
    awk -F '\t' -v extra="$extra" 'NR == FNR { hot[$0] = 1; next }
        ($1 in hot) || $2 ~ extra { print $2 }' "$tmp/hot.mangled" - |
    cat >> "$tmp/all"
done
LC_ALL=C sort -u "$tmp/all" > "$tmp/new"
if [ -n "$check" ]; then
    LC_ALL=C comm -13 packaging/hot-functions.txt "$tmp/new" > "$tmp/missing"
else
    cp "$tmp/new" packaging/hot-functions.txt
fi
# Relink both, stripped and in the list's order.
for target in "" x86_64-unknown-linux-musl; do
    touch src/main.rs
    cargo build --release --quiet ${target:+--target $target}
done
if [ -n "$check" ]; then
    n=$(wc -l < "$tmp/missing")
    if [ "$n" -gt 0 ]; then
        echo "packaging/hot-functions.txt: $n functions ran that it does not list" \
            "(sh benches/hot-functions.sh regenerates it):"
        sed 's/^/    /' "$tmp/missing"
        exit 1
    fi
    echo "packaging/hot-functions.txt: every function that ran is listed"
    exit 0
fi
echo "packaging/hot-functions.txt: $(wc -l < packaging/hot-functions.txt) functions"
