#!/usr/bin/env bash
# Drill R6 (spec/quality.md): SIGTERM tkm while it ingests card events under load. It must stop
# taking deliveries, finish (or leave unacked) what is in flight, publish the card updates of
# what it applied, and exit 0 within 30 s; after a restart every event is applied exactly once
# and every card update is published. Exits non-zero when the promise breaks; prints the counts.
# Usage: scripts/drills/r6-sigterm.sh [events (default 100000)]; TKM_BIN_DIR=target/debug to use
# the debug build (test.sh does, with fewer events).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-100000}
out=target/bench/r6
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=drill-r6 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=18743 INSTANCE_OPS=19390 INSTANCE_SIM=18843

if [[ -z "${TKM_BIN_DIR:-}" ]]; then
  # Always through cargo (quick when up to date): a target/release/tkm left by the production
  # build has no simulator, which config/dev.toml runs.
  scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
fi
"$BIN_DIR/tkm" pgp generate --out-private "$KEY" --out-public "$PUB" --force >/dev/null
instance_reset_db
trap instance_stop EXIT
: >"$out/tkm.log"
instance_start "$out/tkm.log"
db=$(instance_db_url)
sql() { psql "$db" -Atqc "$1"; }

echo "r6: publishing $N card events; the generator then waits for a card update of every card" >&2
"$BIN_DIR/tkm-bench" card-events --events "$N" --database "$db" \
  --events-queue "tkm-read-token-par-pan.$NAME" --updates-queue "tkm-write-update-token.$NAME" \
  --public-key "$PUB" --prefix 78 >"$out/bench.json" 2>"$out/bench.log" &
bench=$!

# SIGTERM while a good part, but not all, is applied: the consumers are busy.
target=$((N / 3))
deadline=$((SECONDS + 600))
until (( $(sql "SELECT count(*) FROM card") >= target )); do
  if ! kill -0 "$bench" 2>/dev/null || ((SECONDS > deadline)); then
    echo "r6: FAIL: ingestion never reached $target cards (see $out/bench.log, $out/tkm.log)" >&2; exit 1
  fi
  sleep 0.2
done
start_ns=$(date +%s%N)
kill -TERM "$INSTANCE_PID"
code=0
wait "$INSTANCE_PID" || code=$?
stop_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
INSTANCE_PID=
at_stop=$(sql "SELECT count(*) FROM card")
left=$(sql "SELECT count(*) FROM outbox")
echo "r6: SIGTERM with $at_stop of $N cards applied: exit code $code after ${stop_ms} ms, outbox left $left" >&2
instance_start "$out/tkm.log"

updates_ok=1
wait "$bench" || updates_ok=0
deadline=$((SECONDS + 600))
until (( $(sql "SELECT count(*) FROM outbox") == 0 )) || ((SECONDS > deadline)); do sleep 1; done
instance_stop

cards=$(sql "SELECT count(*) FROM card")
links=$(sql "SELECT count(*) FROM card_link WHERE live")
intervals=$(sql "SELECT count(*) FROM card_link_interval")
backlog=$(sql "SELECT count(*) FROM outbox")
echo "r6: events=$N cards=$cards live_links=$links intervals=$intervals stop_ms=$stop_ms exit=$code outbox_left_at_stop=$left outbox_backlog=$backlog every_card_updated=$updates_ok"
ok=1
(( code == 0 )) || { echo "r6: FAIL: exit code $code after SIGTERM" >&2; ok=0; }
(( stop_ms <= 30000 )) || { echo "r6: FAIL: exit took ${stop_ms} ms (> 30 s)" >&2; ok=0; }
(( left == 0 )) || { echo "r6: FAIL: $left card updates of applied events left unpublished at exit" >&2; ok=0; }
(( cards == N )) || { echo "r6: FAIL: $cards cards for $N events" >&2; ok=0; }
(( links == N && intervals == N )) || { echo "r6: FAIL: events applied more or less than once (links $links, intervals $intervals)" >&2; ok=0; }
(( backlog == 0 )) || { echo "r6: FAIL: $backlog card updates never published" >&2; ok=0; }
(( updates_ok == 1 )) || { echo "r6: FAIL: not every card's update reached the platform (see $out/bench.log)" >&2; ok=0; }
(( ok == 1 )) && echo "r6: PASS" >&2
(( ok == 1 ))
