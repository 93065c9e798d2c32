#!/usr/bin/env bash
# Benchmark P6 of spec/quality.md: the PAR resolver against the circuit simulator at R calls per
# second per circuit, the three circuits at once. Seeds 3·R·DURATION consenting cards without PAR
# (card events through RabbitMQ), forces one PAR cycle (POST /admin/par/refresh) and reads the
# simulator's per-second histogram (/sim/stats): achieved rate per circuit (full seconds between
# the first and the last) and the busiest second, against R and R + burst. The limit measured in
# the same run is the protocols' crypto rate on one core (tkm-bench protocol-rate).
# Usage: scripts/bench-par-resolver.sh [rates (default "50 200 1000")] [seconds per rate (20)]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATES=${1:-"50 200 1000"}
DURATION=${2:-20}
out=target/bench/p6
mkdir -p "$out"
INSTANCE_EXTRA_ENV=()
source scripts/lib-tkm-instance.sh

scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
trap instance_stop EXIT
KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
target/release/tkm pgp generate --kind curve25519 --out-private "$KEY" --out-public "$PUB" --force >/dev/null
admin=(--silent --show-error --fail --cacert certs/dev/ca.crt --cert certs/dev/admin.pem)

echo "bench: measuring the protocols' one-core rate (the limit)" >&2
target/release/tkm-bench protocol-rate --seconds 2 >"$out/limit.json"

rows=()
for R in $RATES; do
  NAME=bench-p6-$R
  burst=$(( R / 10 > 5 ? R / 10 : 5 ))
  per=$(( R * DURATION ))
  events=$(( per * 3 ))
  INSTANCE_EXTRA_ENV=(TKM__PAR_RESOLVER__INTERVAL_SECS=86400
    TKM__PAR_RESOLVER__CONCURRENCY=$(( R / 10 > 16 ? R / 10 : 16 ))
    TKM__PAR_RESOLVER__BATCH_SIZE=$(( R > 100 ? R : 100 )))
  for c in VISA MASTERCARD AMEX; do
    INSTANCE_EXTRA_ENV+=(TKM__CIRCUITS__${c}__RATE_PER_SECOND=$R TKM__CIRCUITS__${c}__BURST=$burst)
  done
  instance_reset_db
  instance_start "$out/tkm-$R.log"
  echo "bench: R=$R/s per circuit, burst $burst: seeding $events cards" >&2
  target/release/tkm-bench card-events --events "$events" --circuit-mix --publish-only --no-consent \
    --database "$(instance_db_url)" --events-queue "tkm-read-token-par-pan.$NAME" \
    --public-key "$PUB" --prefix "$RANDOM" >/dev/null
  deadline=$((SECONDS + 600))
  until [[ $(psql "$(instance_db_url)" -tAc "SELECT count(*) FROM card") -ge $events ]]; do
    ((SECONDS < deadline)) || { echo "cards not stored after 600 s; see $out/tkm-$R.log" >&2; exit 1; }
    sleep 1
  done
  # Consent after the cards, written directly (as P3's seeding does): nothing is queued until the
  # forced cycle's scan, so the cycle measured is the only one.
  psql "$(instance_db_url)" -qc "WITH c AS (INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by)
      SELECT DISTINCT tax_code, 1, '{\"services\": {\"BPD\": \"Allow\", \"FA\": \"Allow\"}, \"cards\": {}}'::jsonb, 'bench', 'bench'
      FROM card_link ON CONFLICT DO NOTHING RETURNING tax_code, state)
    INSERT INTO consent_history (tax_code, version, at, request, after, created_by, updated_by)
      SELECT tax_code, 1, now(), '{\"consent\": \"Allow\"}'::jsonb, state, 'bench', 'bench' FROM c"
  curl --silent --fail --cacert certs/dev/ca.crt -X POST "https://127.0.0.1:$INSTANCE_SIM/sim/reset" >/dev/null
  echo "bench: R=$R: PAR cycle" >&2
  job=$(curl "${admin[@]}" -X POST "https://localhost:$INSTANCE_API/admin/par/refresh" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobId"])')
  deadline=$((SECONDS + 3 * DURATION + 600))
  while :; do
    state=$(curl "${admin[@]}" "https://localhost:$INSTANCE_API/admin/jobs/$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["done"], j["total"])')
    echo "bench: R=$R: job $state" >&2
    [[ $state == SUCCEEDED* ]] && break
    [[ $state == FAILED* ]] && { echo "PAR cycle failed; see $out/tkm-$R.log" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "PAR cycle still running; see $out/tkm-$R.log" >&2; exit 1; }
    sleep 2
  done
  curl --silent --fail --cacert certs/dev/ca.crt "https://127.0.0.1:$INSTANCE_SIM/sim/stats" >"$out/stats-$R.json"
  instance_stop
  rows+=("$(python3 - "$R" "$burst" "$per" "$out/stats-$R.json" "$out/limit.json" <<'PY'
import json, sys
R, burst, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stats = json.load(open(sys.argv[4]))["circuits"]
limit = json.load(open(sys.argv[5]))
out = []
for c in ("VISA", "MASTERCARD", "AMEX"):
    s = stats[c]
    per_second = {int(k): v for k, v in s["perSecond"].items()}
    secs = sorted(per_second)
    full = secs[1:-1] or secs  # first and last seconds are partial
    achieved = sum(per_second[t] for t in full) / max(1, len(full))
    busiest = max(per_second.values() or [0])
    ok = achieved >= 0.95 * R and busiest <= R + burst
    out.append(f"| {R} | {burst} | {c} | {s['units']}/{per} | {achieved:.1f} ({achieved/R:.2f}·R) | {busiest} | {s['tooManyRequests']} | {limit[c]:.0f} | {'met' if ok else 'NOT met'} |")
print("\n".join(out))
PY
)")
done
{
  echo "### P6 — PAR resolver against the simulator ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-par-resolver.sh \"$RATES\" $DURATION\`. tkm release build with its in-process simulator; per rate R: 3·R·$DURATION consenting cards without PAR (VISA, MASTERCARD, AMEX in turn; AMEX batches of 10 PANs, counted per PAN), one forced PAR cycle, the simulator's per-second histogram. Achieved = mean units per full second; busiest = the largest count in any wall-clock second. Limit = lookups/s one core protects and reads with that circuit's protocol, both sides (client and simulator) counted, no HTTP."
  echo
  echo "| R/s | burst | circuit | units/expected | achieved/s | busiest second | 429s | limit (one core) | P6 |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/report.md"
