#!/usr/bin/env bash
# Fuzzes every parser of outside input (quality.md S3): each target of fuzz/ for SECONDS
# (default 60; at least 600 before a release), starting from its seeds in fuzz/corpus/ (in git)
# and what earlier runs found in fuzz/work/ (kept locally, not in git: thousands of files). A
# crash stops the run with the input saved under fuzz/artifacts/<target>/ — reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> fuzz/artifacts/<target>/<file>
# and, once fixed, copy it into fuzz/corpus/<target>/: the suite (tests/fuzz_corpus.rs) replays
# every seed corpus.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)"
  cargo install --locked --quiet cargo-fuzz
fi
# cargo-fuzz needs nightly flags (sanitizers); the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds} s"
  mkdir -p "fuzz/work/$t"
  if ! cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" \
    -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $t failed; a crashing input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$log" | sed "s/^/fuzz: $t /"
done
echo "fuzz: every target ran ${seconds} s without a crash"
