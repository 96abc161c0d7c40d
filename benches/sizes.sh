#!/usr/bin/env bash
# Stripped release binary size per target and feature set, as a Markdown
# table. Needs the board toolchains (see README, "Run it on a board").
#   benches/sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
sets=("tls,gpu" "tls" "gpu" "")
echo "| target | tls + gpu (default) | tls only | gpu only | neither |"
echo "| --- | --- | --- | --- | --- |"
for t in "${targets[@]}"; do
  row="| \`$t\` |"
  for f in "${sets[@]}"; do
    cargo build -q --release --target "$t" --no-default-features ${f:+--features "$f"} >/dev/null 2>&1 || { row="$row failed |"; continue; }
    b=$(stat -c %s "target/$t/release/sockagent")
    row="$row $(awk -v b="$b" 'BEGIN{printf "%.2f MiB", b/1048576}') |"
  done
  echo "$row"
done
