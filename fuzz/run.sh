#!/usr/bin/env bash
# Runs every fuzz target for MINUTES (default 10) each, one after another,
# and prints one summary line per target. From the repo root:
#   fuzz/run.sh [MINUTES [TARGET...]]     (default: every target)
# Needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain build the sanitizer flags cargo-fuzz uses.
set -uo pipefail
cd "$(dirname "$0")"
mins=${1:-10}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(request http_head proc_parsers sys_journal_cert pb_roundtrip remote_answer alerts_file)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p corpus/$t
  log=$(mktemp)
  seeds=(); [ -d "seeds/$t" ] && seeds=("seeds/$t")   # pb_roundtrip starts from nothing
  cargo fuzz run -O "$t" corpus/$t "${seeds[@]}" -- -max_total_time=$((mins * 60)) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*ft: ([0-9]+).*/cov \1 ft \2/')
  crashes=$(ls artifacts/$t 2>/dev/null | grep -c -E '^(crash|leak|timeout|oom)-' || true)
  echo "$t: exit $rc, $mins min, $execs execs, $cov, corpus $(ls corpus/$t | wc -l), crashes/leaks/timeouts $crashes"
  rm -f "$log"
done
