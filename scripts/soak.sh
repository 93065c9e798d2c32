#!/usr/bin/env bash
# The soak (spec/quality.md, issue 15): mixed load at about half the measured capacity for a
# while, against a release build (or TKM_BIN_DIR's), with resources sampled throughout. Run on
# demand only (neither scripts/test.sh nor scripts/drills/all.sh runs it).
#   capacity  10 s of the API mix as fast as scripts/soak-load.py's threads go (the limit here:
#             this generator against this build on this machine); SOAK_RATE=n skips it
#   load      the API mix (consent reads and writes over mTLS) at half of it, all along; every
#             few minutes (ROUND_SECS, default 180, a third of a shorter run) a batch of card events of the three circuits
#             without PAR (card registry, outbox, PAR lookups against the simulator), a token
#             list and a transaction file through the API
#   samples   every SAMPLE_SECS (default 20): tkm's RSS and open files (/proc), the database pool
#             (tkm_db_pool_connections), the outbox backlog, ERROR lines in tkm's log
# Verdict: flat (each resource's maximum over the last third at most 20 % above the first
# third's, plus a small slack for counts), no ERROR line, no answer but the expected ones
# (200 to the API mix, 202 to uploads), every upload processed and the outbox drained at the
# end, every card event applied. Prints the samples and the verdict; exits non-zero on a breach.
# Usage: scripts/soak.sh [minutes (default 20)]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MINUTES=${1:-20}
SAMPLE=${SAMPLE_SECS:-20}
ROUND=${ROUND_SECS:-$((MINUTES * 20 < 180 ? MINUTES * 20 : 180))}
EVENTS=${SOAK_EVENTS:-300}
out=target/bench/soak
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=soak KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=19643 INSTANCE_OPS=19890 INSTANCE_SIM=19743
INSTANCE_EXTRA_ENV=("TKM__STORAGE__DIR=$ROOT/$out/storage")
drill_setup
gh=$(mktemp -d)
cleanup() {
  [[ -n "${load:-}" ]] && kill "$load" 2>/dev/null
  instance_stop; instance_drop
  gpgconf --homedir "$gh" --kill all 2>/dev/null || true
  rm -rf "$gh" "$out/storage" "$out"/*.pgp "$out"/*.csv
}
trap cleanup EXIT
instance_reset_db
: >"$out/tkm.log"
instance_start "$out/tkm.log"
pid=$INSTANCE_PID

if [[ -n "${SOAK_RATE:-}" ]]; then
  capacity=$((SOAK_RATE * 2))
else
  python3 scripts/soak-load.py --port "$INSTANCE_API" --seconds 10 --base 6000000 --stats "$out/capacity.json" >/dev/null
  capacity=$(jsonq 'int(j["rate"])' <"$out/capacity.json")
fi
rate=$((capacity / 2))
((rate > 0)) || { echo "soak: the API answered nothing during the calibration (see $out/tkm.log)" >&2; exit 1; }
echo "soak: capacity ~$capacity req/s (API mix, this generator); $MINUTES min at $rate req/s, samples every $SAMPLE s, a round of card events, token list and transaction file every $ROUND s" >&2
rm -f "$out/load.json"
python3 scripts/soak-load.py --port "$INSTANCE_API" --seconds $((MINUTES * 60)) --rate "$rate" \
  --stats "$out/load.json" >"$out/load-final.json" &
load=$!

unexpected=0 rounds=0
round() { # k: card events (no PAR: lookups), a token list, a transaction file
  local k=$1 name
  "$BIN_DIR/tkm-bench" card-events --events "$EVENTS" --circuit-mix --publish-only --database "$(instance_db_url)" \
    --events-queue "tkm-read-token-par-pan.$NAME" --public-key "$PUB" --prefix $((50000 + k)) \
    >/dev/null 2>>"$out/bench.log" || unexpected=$((unexpected + 1))
  name=$(printf 'TKM.99999.TKNLST.20261205.120000.%03d.csv.pgp' "$k")
  python3 -c 'import sys; k = int(sys.argv[1]); sys.stdout.write("".join(f"400{k:05d}{i:08d};01;V001{k:06d}{i // 10:019d}\n" for i in range(2000)))' "$k" \
    | gpg --homedir "$gh" --batch --quiet --trust-model always --recipient-file "$PUB" --encrypt >"$out/$name"
  instance_call acquirer -F "file=@$out/$name;filename=$name" /token-list
  [[ $API_CODE == 202 ]] || { unexpected=$((unexpected + 1)); echo "soak: token list answered $API_CODE" >&2; }
  name=$(printf 'CSTAR.99999.TRNLOG.20261205.120000.%03d.csv' "$k")
  python3 -c 'import hashlib, sys
k = int(sys.argv[1])
for i in range(2000):
    h = hashlib.sha256(b"soak-%d-%d" % (k, i)).hexdigest()
    print(f"99999;00;01;{h};2026-11-20T10:00:00.000+01:00;s{k}-{i};;;{100 + i};978;acq1;m1;term1;40236010;4900;")' "$k" >"$out/$name"
  instance_call acquirer -F "file=@$out/$name;filename=$name" /transactions
  [[ $API_CODE == 202 ]] || { unexpected=$((unexpected + 1)); echo "soak: transaction file answered $API_CODE" >&2; }
  rm -f "$out"/*.pgp "$out"/*.csv
  rounds=$((rounds + 1))
}

printf '%6s %8s %6s %5s %6s %8s %8s %8s %7s %7s\n' t_s rss_mb fds pool avail waiting outbox api_rps api_bad errors | tee "$out/samples.txt" >&2
samples=()
start=$SECONDS next_round=$SECONDS
while kill -0 "$load" 2>/dev/null; do
  if ((SECONDS >= next_round)); then round "$rounds"; next_round=$((next_round + ROUND)); fi
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  pool=$(instance_metric 'tkm_db_pool_connections{state="size"}')
  avail=$(instance_metric 'tkm_db_pool_connections{state="available"}')
  waiting=$(instance_metric 'tkm_db_pool_connections{state="waiting"}')
  backlog=$(instance_sql "SELECT count(*) FROM outbox")
  read -r rps bad < <({ jsonq 'str(j["rate"]) + " " + str(j["sent"] - j["ok"])' <"$out/load.json"; } 2>/dev/null || echo "0 0")
  errors=$(grep -c '"level":"ERROR"' "$out/tkm.log" || true)
  printf '%6d %8d %6d %5d %6d %8d %8d %8s %7s %7d\n' $((SECONDS - start)) "$rss" "$fds" "$pool" "$avail" "$waiting" "$backlog" "$rps" "$bad" "$errors" | tee -a "$out/samples.txt" >&2
  samples+=("$rss $fds $pool $backlog")
  sleep "$SAMPLE"
done
wait "$load" || unexpected=$((unexpected + 1))
load=
final=$(cat "$out/load-final.json")
bad=$(jsonq 'j["sent"] - j["ok"]' <<<"$final")
sent=$(jsonq 'j["sent"]' <<<"$final")

# The end: every upload processed, the outbox drained.
deadline=$((SECONDS + 120))
until (( $(instance_sql "SELECT count(*) FROM upload WHERE state <> 'DONE'") == 0 && $(instance_sql "SELECT count(*) FROM outbox") == 0 )); do
  ((SECONDS < deadline)) || break
  sleep 1
done
pending_uploads=$(instance_sql "SELECT count(*) FROM upload WHERE state <> 'DONE'")
uploads=$(instance_sql "SELECT count(*) FROM upload")
backlog=$(instance_sql "SELECT count(*) FROM outbox")
cards=$(instance_sql "SELECT count(*) FROM card") pars=$(instance_sql "SELECT count(*) FROM card WHERE par IS NOT NULL")
errors=$(grep -c '"level":"ERROR"' "$out/tkm.log" || true)
verdict=$(printf '%s\n' "${samples[@]}" | python3 -c '
import sys
rows = [list(map(int, l.split())) for l in sys.stdin if l.strip()]
n = len(rows)
if n < 3:
    print("too few samples"); sys.exit()
first, last = rows[: n // 3], rows[n - n // 3 :]
out = []
for col, name, slack in ((0, "rss_mb", 0), (1, "fds", 8), (2, "pool", 2), (3, "outbox", 1000)):
    a, b = max(r[col] for r in first), max(r[col] for r in last)
    out.append(f"{name} {a}->{b} " + ("flat" if b <= a * 1.2 + slack else "GROWING"))
print("; ".join(out))')
echo "soak: minutes=$MINUTES rate=$rate req/s api_requests=$sent api_unexpected=$bad rounds=$rounds uploads=$uploads not_done=$pending_uploads cards=$cards with_par=$pars outbox_backlog=$backlog error_lines=$errors other_unexpected=$unexpected | $verdict"
ok=1
[[ $verdict != *GROWING* && $verdict != "too few samples" ]] || { echo "soak: FAIL: not flat: $verdict" >&2; ok=0; }
((errors == 0)) || { echo "soak: FAIL: $errors ERROR lines in $out/tkm.log" >&2; ok=0; }
((bad == 0 && unexpected == 0)) || { echo "soak: FAIL: $bad unexpected API answers, $unexpected other failures" >&2; ok=0; }
((pending_uploads == 0 && backlog == 0)) || { echo "soak: FAIL: $pending_uploads uploads not processed, outbox $backlog" >&2; ok=0; }
((cards == rounds * EVENTS && uploads == 2 * rounds)) || { echo "soak: FAIL: $cards cards for $((rounds * EVENTS)) events, $uploads uploads for $((2 * rounds))" >&2; ok=0; }
((ok == 1)) && echo "soak: PASS" >&2
((ok == 1))
