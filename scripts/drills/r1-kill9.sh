#!/usr/bin/env bash
# Drill R1 (spec/quality.md): kill -9 tkm while it ingests card events, restart it, and check
# that every event is applied exactly once and every card update is published.
# Exits non-zero when the promise breaks; prints the counts.
# Usage: scripts/drills/r1-kill9.sh [events (default 100000)]; TKM_BIN_DIR=target/debug to use
# the debug build (test.sh does, with fewer events).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-100000}
out=target/bench/r1
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=drill-r1 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=18643 INSTANCE_OPS=19290

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

echo "r1: publishing $N card events; the generator then waits for a card update of every card" >&2
"$BIN_DIR/tkm-bench" card-events --events "$N" --database "$db" \
  --events-queue "tkm-read-token-par-pan.$NAME" --updates-queue "tkm-write-update-token.$NAME" \
  --public-key "$PUB" --prefix 77 >"$out/bench.json" 2>"$out/bench.log" &
bench=$!

# Kill while a good part, but not all, is applied.
target=$((N / 3))
deadline=$((SECONDS + 600))
until (( $(sql "SELECT count(*) FROM card") >= target )); do
  if ! kill -0 "$bench" 2>/dev/null || ((SECONDS > deadline)); then
    echo "r1: FAIL: ingestion never reached $target cards (see $out/bench.log, $out/tkm.log)" >&2; exit 1
  fi
  sleep 0.2
done
kill -9 "$INSTANCE_PID"
wait "$INSTANCE_PID" 2>/dev/null || true
INSTANCE_PID=
at_kill=$(sql "SELECT count(*) FROM card")
echo "r1: killed tkm with $at_kill of $N cards applied" >&2
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
echo "r1: events=$N cards=$cards live_links=$links intervals=$intervals outbox_backlog=$backlog every_card_updated=$updates_ok"
ok=1
(( cards == N )) || { echo "r1: FAIL: $cards cards for $N events" >&2; ok=0; }
(( links == N && intervals == N )) || { echo "r1: FAIL: events applied more or less than once (links $links, intervals $intervals)" >&2; ok=0; }
(( backlog == 0 )) || { echo "r1: FAIL: $backlog card updates never published" >&2; ok=0; }
(( updates_ok == 1 )) || { echo "r1: FAIL: not every card's update reached the platform (see $out/bench.log)" >&2; ok=0; }
(( ok == 1 )) && echo "r1: PASS" >&2
(( ok == 1 ))
