#!/usr/bin/env bash
# Benchmark P3 of spec/quality.md: card events end to end (RabbitMQ → PGP decrypt → hash → vault
# encrypt → PostgreSQL → outbox → published card update). Each event is a new card of a
# consenting citizen (one per 4 cards) with its PAR and one clear token. Per key kind it reports
# the rate, the CPU seconds per event of each process over the run (tkm, PostgreSQL, RabbitMQ,
# the load generator; from /proc), and PostgreSQL's statements (pg_stat_statements, switched on
# for the benchmark and off again) with the tables' scans. The limit measured in the same run is
# the single-core raw decrypt rate of the same key on the same messages.
# Usage: scripts/bench-card-events.sh [events-for-curve25519 (default 200000)]
#   KINDS="curve25519:200000 rsa2048:20000 rsa4096:4000"  key kinds and events
#   PREFILL=100000   cards already in the database before the run (loaded in bulk)
#   PGSS=0           skip pg_stat_statements (no PostgreSQL restart)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-200000}
KINDS=${KINDS:-"curve25519:$N rsa2048:20000 rsa4096:4000"}
PREFILL=${PREFILL:-100000}
PGSS=${PGSS:-1}
out=target/bench/p3
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
source scripts/lib-bench-profile.sh

scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
trap 'instance_stop; pgss_off' EXIT
((PGSS == 1)) && pgss_on
ticks=$(getconf CLK_TCK)

rows=() details=()
for spec in $KINDS; do
  kind=${spec%%:*} n=${spec#*:}
  KEY=$ROOT/$out/$kind.asc PUB=$ROOT/$out/$kind.pub.asc NAME=bench-p3-$kind
  target/release/tkm pgp generate --kind "$kind" --out-private "$KEY" --out-public "$PUB" --force >/dev/null
  instance_reset_db
  db=$(instance_db_url)
  env $(instance_env) target/release/tkm --config config/dev.toml migrate >/dev/null
  prefill "$db" "$PREFILL"
  instance_start "$out/tkm-$kind.log"
  TKM_PID=$INSTANCE_PID
  ((PGSS == 1)) && pgss_reset "$db"
  echo "bench: $kind, $n events, $PREFILL cards already stored" >&2
  target/release/tkm-bench card-events --events "$n" --database "$db" --with-token \
    --events-queue "tkm-read-token-par-pan.$NAME" --updates-queue "tkm-write-update-token.$NAME" \
    --public-key "$PUB" --secret-key "$KEY" --prefix "$RANDOM" >"$out/$kind.json" 2>"$out/$kind.bench.log" &
  GEN_PID=$!
  # The window starts when the generator publishes (its encryption before is not the run's).
  until grep -q "publishing" "$out/$kind.bench.log" 2>/dev/null || ! kill -0 "$GEN_PID" 2>/dev/null; do sleep 0.05; done
  before=$(cpu_snapshot)
  # The generator's CPU is read just before it ends (a finished process has no /proc entry).
  while kill -0 "$GEN_PID" 2>/dev/null; do after=$(cpu_snapshot); sleep 0.2; done
  wait "$GEN_PID"
  ((PGSS == 1)) && details+=("#### $kind: PostgreSQL statements and table scans over the run" "" "$(pgss_report "$db" "$n")" "")
  instance_stop
  rows+=("$(python3 - "$kind" "$out/$kind.json" "$before" "$after" "$ticks" "$n" <<'PY'
import json, sys
kind, path, before, after, tck, n = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), int(sys.argv[5]), int(sys.argv[6])
r = json.load(open(path))
limit = r["decrypt_per_second_one_core"]
us = [ (int(a) - int(b)) / tck * 1e6 / n for a, b in zip(after, before) ]
print(f"| {kind} | {r['events']} | {r['seconds']:.1f} | **{r['events_per_second']:.0f}** | {limit:.0f} | {r['events_per_second']/limit:.2f} | {us[0]:.0f} | {us[1]:.0f} | {us[2]:.0f} | {us[3]:.0f} |")
PY
)")
done
{
  echo "### P3 — card events end to end ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`PREFILL=$PREFILL scripts/bench-card-events.sh $N\` (KINDS=\"$KINDS\"). tkm release build, default settings (prefetch 2048, batches of 512), $PREFILL cards already stored, one consenting citizen per 4 cards, every event a new card with a PAR and a clear token, so every event produces a published card update. CPU per event is each process's user+system time over the run (from /proc) divided by the events."
  echo
  echo "| key | events | seconds | events/s end to end | limit: raw decrypt/s, one core | ratio | tkm µs CPU/event | PostgreSQL µs/event | RabbitMQ µs/event | generator µs/event |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${details[@]}"
} | tee "$out/report.md"
