#!/usr/bin/env bash
# Drill R5 (spec/quality.md): circuit faults under PAR lookups. First a failed BIN refresh (Visa
# down, then answering garbage) must keep the previous ranges. Then consenting citizens' cards
# of the three circuits arrive as card events (no PAR: every card a lookup, at R/s per circuit)
# while the built-in simulator (config/dev.toml) fails Visa in turn for S seconds each: 5xx, 429
# with Retry-After, timeouts, garbage. Each fault must reach tkm (the Visa lookups it failed
# record it; a 429 pauses Visa for its Retry-After), Mastercard and Amex must keep being served
# meanwhile (half their rate at least, until they are done), and once the faults are cleared
# every card must get its PAR (lost = 0).
# Exits non-zero when the promise breaks; prints the counts.
# Usage: scripts/drills/r5-circuit-faults.sh [cards per circuit (default 400)] [S (default 8)];
# TKM_BIN_DIR=target/debug to use the debug build (else a release build through cargo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
M=${1:-400}
S=${2:-8}
R=10
out=target/bench/r5
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=drill-r5 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=19143 INSTANCE_OPS=19590 INSTANCE_SIM=19243
# Every simulated card has a PAR; a held call times out after 1.5 s; a failed lookup is due again
# after 2 s; cycles every 2 s; pauses (429, breaker) of at most 5 s.
INSTANCE_EXTRA_ENV=("TKM__STORAGE__DIR=$ROOT/$out/storage" TKM__CIRCUITS__SIMULATOR__NO_PAR_SHARE=0
  TKM__CIRCUITS__TIMEOUT_MS=1500 TKM__CIRCUITS__MAX_RETRY_AFTER_SECS=5
  TKM__PAR_RESOLVER__INTERVAL_SECS=2 TKM__PAR_RESOLVER__RETRY_AFTER_SECS=2
  TKM__PAR_RESOLVER__RETRY_BACKOFF_MS=50 TKM__PAR_RESOLVER__DEFAULT_RETRY_AFTER_SECS=1
  TKM__PAR_RESOLVER__BREAKER_PAUSE_SECS=3)
for c in VISA MASTERCARD AMEX; do
  INSTANCE_EXTRA_ENV+=("TKM__CIRCUITS__${c}__RATE_PER_SECOND=$R" "TKM__CIRCUITS__${c}__BURST=2")
done
drill_setup
trap 'instance_stop; instance_drop; rm -rf "$out/storage"' EXIT
instance_reset_db
: >"$out/tkm.log"
instance_start "$out/tkm.log"
sim() { curl --silent --show-error --fail --cacert certs/dev/ca.crt "https://127.0.0.1:$INSTANCE_SIM$1" "${@:2}"; }
fault() { sim /sim/faults -H 'Content-Type: application/json' -d "{\"circuit\":\"VISA\"$1}" >/dev/null; }
ok=1
fail() { echo "r5: FAIL: $*" >&2; ok=0; }
bin_refresh() { # → the job's end state
  instance_call admin -X POST "/admin/bin-ranges/refresh?circuit=VISA$1"
  [[ $API_CODE == 202 ]] || { echo "refresh answered $API_CODE"; return; }
  instance_job_end "$(jsonq 'j["jobId"]' <<<"$API_BODY")" 120
}

# 1. A failed BIN refresh keeps the previous ranges.
[[ $(bin_refresh "&force=true") == SUCCEEDED ]] || fail "the first Visa BIN refresh did not succeed"
bins=$(instance_sql "SELECT count(*) FROM bin_range WHERE circuit = 'VISA'")
((bins > 0)) || fail "no Visa BIN range after a successful refresh"
bin_ok=1
for f in ',"outageSecs":60' ',"malformedRate":1'; do
  sim /sim/reset -X POST >/dev/null
  fault "$f"
  state=$(bin_refresh "")
  now=$(instance_sql "SELECT count(*) FROM bin_range WHERE circuit = 'VISA'")
  instance_call admin /admin/status
  err=$(jsonq 'j["circuits"]["VISA"]["lastBinError"] is not None' <<<"$API_BODY")
  [[ $state == FAILED && $now == "$bins" && $err == True ]] || { fail "refresh with fault $f: job $state, ranges $bins → $now, error shown $err"; bin_ok=0; }
done
sim /sim/reset -X POST >/dev/null
echo "r5: BIN refresh: $bins Visa ranges kept through an outage and garbage: $([[ $bin_ok == 1 ]] && echo yes || echo NO)" >&2

# 2. PAR lookups under faults of Visa.
found() { # PARs found: Amex Mastercard Visa
  instance_sql "SELECT string_agg((SELECT count(*) FROM card WHERE circuit = v.c AND par IS NOT NULL)::text, ' ' ORDER BY v.c) FROM (VALUES ('AMEX'), ('MASTERCARD'), ('VISA')) v (c)"
}
# Visa's failed answers as the simulator counts them; Visa lookups whose last try failed so in tkm
# (tkm_circuit_calls_total counts a 200 with a garbage body as "ok": the resolver's record is used).
sim_failed() { sim /sim/stats | jsonq 'j["circuits"]["VISA"]["errors"] + j["circuits"]["VISA"]["tooManyRequests"]'; }
seen() { instance_sql "SELECT count(*) FROM par_lookup WHERE circuit = 'VISA' AND last_outcome = '$1'"; }
fault ',"errorRate":1' # Visa fails before its first card arrives
echo "r5: enrolling $((3 * M)) cards (Visa, Mastercard, Amex in turn) of consenting citizens" >&2
"$BIN_DIR/tkm-bench" card-events --events $((3 * M)) --circuit-mix --publish-only \
  --database "$(instance_db_url)" --events-queue "tkm-read-token-par-pan.$NAME" \
  --public-key "$PUB" --prefix $((RANDOM % 90000 + 10000)) >"$out/bench.json" 2>"$out/bench.log"
started=$SECONDS
failed=0
for phase in 'server_error:,"errorRate":1' 'rate_limited:,"tooManyRequestsRate":1,"retryAfter":"3"' \
             'timeout:,"timeoutRate":1' 'malformed:,"malformedRate":1'; do
  outcome=${phase%%:*}
  fault "${phase#*:}"
  before=$(sim_failed)
  read -r amex0 mc0 visa0 <<<"$(found)"
  paused=0 t0=$SECONDS
  # S seconds, longer (up to 30 s more) while Visa is still paused by the previous fault.
  # tkm's record of the fault: the lookups that failed so; for 429s (retried, not failed) the pause.
  evidence() { if [[ $outcome == rate_limited ]]; then echo "$paused"; else seen "$outcome"; fi; }
  while ((SECONDS - t0 < S)) || { (( $(evidence) == 0 )) && ((SECONDS - t0 < S + 30)); }; do
    sleep 1
    instance_call admin /admin/status
    # Paused after this fault's first failed answer (not by the previous fault's breaker).
    [[ $(jsonq 'j["circuits"]["VISA"]["paused"]' <<<"$API_BODY") == True ]] && (( $(sim_failed) > before )) && paused=1
  done
  secs=$((SECONDS - t0))
  read -r amex1 mc1 visa1 <<<"$(found)"
  n=$(( $(sim_failed) - before )) recorded=$(seen "$outcome") shown=$(evidence)
  failed=$((failed + n))
  echo "r5: Visa $outcome for $secs s: $n Visa answers failed, $recorded lookups record it, Visa paused $paused; PARs found meanwhile: Visa $((visa1 - visa0)), Mastercard $((mc1 - mc0)), Amex $((amex1 - amex0))" >&2
  ((n > 0 && shown > 0)) || fail "Visa's $outcome: $n failed answers, none recorded by tkm (a 429: Visa never paused)"
  # The others go on: half their rate at least, or they were done.
  least=$((R * secs / 2))
  ((mc1 - mc0 >= least || mc1 == M)) || fail "Mastercard found $((mc1 - mc0)) PARs during Visa's $outcome"
  ((amex1 - amex0 >= least || amex1 == M)) || fail "Amex found $((amex1 - amex0)) PARs during Visa's $outcome"
done

# 3. The faults cleared: every card gets its PAR.
stats=$(sim /sim/stats | jsonq '" ".join(c + "=" + str(v["units"]) for c, v in sorted(j["circuits"].items()))')
sim /sim/reset -X POST >/dev/null
deadline=$((SECONDS + 120 + 3 * M / R))
until (( $(instance_sql "SELECT count(*) FROM card WHERE par IS NULL") == 0 )); do
  ((SECONDS < deadline)) || { fail "cards still without PAR after the faults were cleared"; break; }
  sleep 1
done
took=$((SECONDS - started))
asked=$(instance_sql "SELECT count(*) FROM card")
got=$(instance_sql "SELECT count(*) FROM card WHERE par IS NOT NULL AND par_source = 'circuit'")
owed=$(instance_sql "SELECT count(*) FROM par_lookup WHERE subject = 'card'")
lost=$((asked - got))
echo "r5: asked=$asked found=$got failed_calls=$failed lost=$lost lookups_still_owed=$owed bin_ranges_kept=$([[ $bin_ok == 1 ]] && echo yes || echo no) simulator_units_under_faults[$stats] seconds=$took"
((asked == 3 * M)) || fail "$asked cards stored for $((3 * M)) events"
((lost == 0 && owed == 0)) || fail "$lost cards without their PAR, $owed lookups still owed"
((ok == 1)) && echo "r5: PASS" >&2
((ok == 1))
