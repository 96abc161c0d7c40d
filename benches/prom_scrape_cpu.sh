#!/usr/bin/env bash
# CPU per Prometheus scrape: sockagent's /metrics against Debian's
# prometheus-node-exporter (default collectors), side by side on this machine.
#
#   cargo build --release && benches/prom_scrape_cpu.sh [SCRAPES] [GAP_S]
#   PLAIN=1 benches/prom_scrape_cpu.sh ...     # without Accept-Encoding: gzip
#
# Both run on loopback ports; each gets SCRAPES scrapes GAP_S apart (1.6 s:
# longer than every sockagent cache window, so each scrape really collects,
# as with a 15 s scrape interval). CPU is the process's time summed over
# its threads from /proc/PID/task/*/schedstat (ns; node_exporter runs its
# work on several threads, sockagent on one), read before and after, after
# one warm-up scrape each; node_exporter's utime+stime from /proc/PID/stat
# (10 ms ticks, exited threads included) is printed as a cross-check.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
GAP=${2:-1.6}
AGENT=${AGENT:-${CARGO_TARGET_DIR:-target}/release/sockagent}
NE=$(command -v prometheus-node-exporter || command -v node_exporter || true)
[ -x "$AGENT" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -n "$NE" ] || { echo "install Debian's prometheus-node-exporter" >&2; exit 1; }
command -v curl >/dev/null || { echo "install curl" >&2; exit 1; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PA=$(free_port)
PN=$(free_port)
"$AGENT" --bind 127.0.0.1 --port "$PA" 2>/dev/null &
AP=$!
"$NE" --web.listen-address="127.0.0.1:$PN" >/dev/null 2>&1 &
NP=$!
trap 'kill $AP $NP 2>/dev/null || true' EXIT
sleep 1.5

hz=$(getconf CLK_TCK)
cpu_ns() { # CPU time of a whole process (every thread), ns
    if ls /proc/$1/task/*/schedstat >/dev/null 2>&1; then
        cat /proc/$1/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'
    else
        cpu_ticks_ns "$1"
    fi
}
cpu_ticks_ns() { # utime+stime of the process (threads that exited included), ns
    sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$hz" '{printf "%d\n", ($12+$13)*1e9/hz}'
}
# As Prometheus scrapes: it always sends Accept-Encoding: gzip (both
# exporters then gzip). PLAIN=1 asks for uncompressed answers instead.
if [ -n "${PLAIN:-}" ]; then ENC=(); else ENC=(-H "Accept-Encoding: gzip"); fi
scrape() { curl -fsS -o /dev/null "${ENC[@]}" "http://127.0.0.1:$1/metrics"; }

scrape "$PA"; scrape "$PN"; sleep "$GAP"
a0=$(cpu_ns $AP); n0=$(cpu_ns $NP); t0=$(cpu_ticks_ns $NP)
for _ in $(seq "$N"); do
    scrape "$PA"
    scrape "$PN"
    sleep "$GAP"
done
a1=$(cpu_ns $AP); n1=$(cpu_ns $NP); t1=$(cpu_ticks_ns $NP)
ab=$(curl -fsS "http://127.0.0.1:$PA/metrics" | wc -c)
nb=$(curl -fsS "http://127.0.0.1:$PN/metrics" | wc -c)
ar=$(awk '/VmRSS/{print $2}' /proc/$AP/status)
nr=$(awk '/VmRSS/{print $2}' /proc/$NP/status)
ne_version=$("$NE" --version 2>&1 | head -1)
awk -v a=$((a1 - a0)) -v n=$((n1 - n0)) -v t=$((t1 - t0)) -v N="$N" -v ab="$ab" -v nb="$nb" -v ar="$ar" -v nr="$nr" \
    -v nev="$ne_version" -v gap="$GAP" 'BEGIN {
    am = a / N / 1e6; nm = n / N / 1e6
    printf "%d scrapes each, %s s apart\n", N, gap
    printf "%-34s %8.3f ms CPU/scrape  %7d bytes  %6.1f MB RSS\n", "sockagent /metrics", am, ab, ar / 1024
    printf "%-34s %8.3f ms CPU/scrape  %7d bytes  %6.1f MB RSS\n", substr(nev, 1, 34), nm, nb, nr / 1024
    printf "ratio sockagent / node_exporter: %.3f\n", am / nm
    printf "(node_exporter by /proc/PID/stat ticks instead: %.2f ms CPU/scrape)\n", t / N / 1e6
}'
