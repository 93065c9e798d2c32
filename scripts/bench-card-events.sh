#!/usr/bin/env bash
# Benchmark P3 of spec/quality.md: card events end to end (RabbitMQ → PGP decrypt → hash → vault
# encrypt → PostgreSQL → outbox → published card update) with tkm's default Curve25519 key, and
# with RSA-2048 and RSA-4096 keys, whose private operation is the bottleneck. The limit measured
# in the same run is the single-core raw decrypt rate of the same key on the same messages.
# Usage: scripts/bench-card-events.sh [events-for-curve25519 (default 200000)]
#        KINDS="curve25519:200000 rsa2048:20000 rsa4096:4000" scripts/bench-card-events.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-200000}
KINDS=${KINDS:-"curve25519:$N rsa2048:20000 rsa4096:4000"}
out=target/bench/p3
mkdir -p "$out"
source scripts/lib-tkm-instance.sh

scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
trap instance_stop EXIT

rows=()
for spec in $KINDS; do
  kind=${spec%%:*} n=${spec#*:}
  KEY=$ROOT/$out/$kind.asc PUB=$ROOT/$out/$kind.pub.asc NAME=bench-p3-$kind
  target/release/tkm pgp generate --kind "$kind" --out-private "$KEY" --out-public "$PUB" --force >/dev/null
  instance_reset_db
  instance_start "$out/tkm-$kind.log"
  echo "bench: $kind, $n events" >&2
  target/release/tkm-bench card-events --events "$n" --database "$(instance_db_url)" \
    --events-queue "tkm-read-token-par-pan.$NAME" --updates-queue "tkm-write-update-token.$NAME" \
    --public-key "$PUB" --secret-key "$KEY" --prefix "$RANDOM" >"$out/$kind.json"
  instance_stop
  rows+=("$(python3 - "$kind" "$out/$kind.json" <<'PY'
import json, sys
kind, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
limit = r["decrypt_per_second_one_core"]
print(f"| {kind} | {r['events']} | {r['seconds']:.1f} | **{r['events_per_second']:.0f}** | {limit:.0f} | {r['events_per_second']/limit:.2f} |")
PY
)")
done
{
  echo "### P3 — card events end to end ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-card-events.sh $N\` (KINDS=\"$KINDS\"). tkm release build, default settings (prefetch 2048, batches of 512), one consenting citizen per 4 cards, every event a new card with a PAR, so every event produces a published card update."
  echo
  echo "| key | events | seconds | events/s end to end | limit: raw decrypt/s, one core | ratio |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/report.md"
