#!/usr/bin/env bash
# Drills R2 and R3 (spec/quality.md): RabbitMQ, then PostgreSQL, restarted while tkm ingests card
# events. R2: with the broker stopped, readiness shows it down; once it is back tkm reconnects by
# itself and applies the rest. R3: with the database stopped, the API answers 503 (9503) and
# nothing is acknowledged; once it is back, service resumes without a restart. Then: every event
# applied exactly once (cards, live links, intervals), every card update published, outbox 0.
# The services are always started again, whatever happens. Exits non-zero when a promise
# breaks; prints the counts.
# Usage: scripts/drills/r23-restarts.sh [events per phase (default 20000)]; TKM_BIN_DIR=target/debug
# to use the debug build (else a release build with the simulator and tkm-bench, through cargo).
# It stops the machine's RabbitMQ and PostgreSQL for a few seconds: run it alone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-20000}
out=target/bench/r23
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=drill-r23 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=19543 INSTANCE_OPS=19990 INSTANCE_SIM=19593
INSTANCE_EXTRA_ENV=("TKM__STORAGE__DIR=$ROOT/$out/storage")
for tool in amqp-consume rabbitmqctl pg_ctlcluster python3; do
  command -v "$tool" >/dev/null || { echo "r23: $tool is needed" >&2; exit 1; }
done
pg_version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -1)
rabbit_up() { rabbitmqctl start_app >/dev/null 2>&1 || true; rabbitmqctl await_startup >/dev/null 2>&1 || true; }
pg_up() {
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  until pg_isready -q -h 127.0.0.1 || ((SECONDS > deadline)); do sleep 0.2; done
}
drill_setup
cleanup() { rabbit_up; pg_up; instance_stop; instance_drop; rm -rf "$out/storage"; }
trap cleanup EXIT
instance_reset_db
: >"$out/tkm.log"
instance_start "$out/tkm.log"
events=tkm-read-token-par-pan.$NAME updates=tkm-write-update-token.$NAME

# Publishes N events (consenting citizens, one VISA card with its PAR each) and waits for the
# publisher; prints how many cards were applied when it returned.
publish() {
  "$BIN_DIR/tkm-bench" card-events --events "$N" --publish-only --database "$(instance_db_url)" \
    --events-queue "$events" --updates-queue "$updates" --public-key "$PUB" --prefix "$1" \
    >>"$out/bench.log" 2>&1
  instance_sql "SELECT count(*) FROM card"
}
# wait_applied COUNT: until COUNT cards and an empty outbox (or 300 s).
wait_applied() {
  local deadline=$((SECONDS + 300))
  until (($(instance_sql "SELECT count(*) FROM card") >= $1)) && (($(instance_sql "SELECT count(*) FROM outbox") == 0)); do
    ((SECONDS > deadline)) && return 0
    sleep 0.5
  done
}
ready() { curl -s "http://127.0.0.1:$INSTANCE_OPS/health/ready" | jsonq 'j.get("broker")' 2>/dev/null || echo "?"; }

# R2: the broker goes away mid-stream.
at_r2=$(publish 21)
rabbitmqctl stop_app >/dev/null
sleep 3
broker_shown=$(ready)
sleep 2
rabbit_up
wait_applied "$N"
r2_cards=$(instance_sql "SELECT count(*) FROM card")
echo "r23: R2 broker stopped with $at_r2 of $N cards applied; readiness said broker=$broker_shown; after: $r2_cards" >&2

# R3: the database goes away mid-stream.
at_r3=$(publish 31)
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop -m fast
sleep 2
instance_call io -H "Tax-Code: RSSMRA85T10A562S" /consent
api_when_down=$API_CODE
api_code=$(jsonq 'j.get("statusCode")' <<<"${API_BODY:-null}" 2>/dev/null || echo "?")
sleep 3
pg_up
wait_applied $((2 * N))
echo "r23: R3 database stopped with $((at_r3 - N)) of $N cards applied; the API answered $api_when_down ($api_code) meanwhile" >&2

cards=$(instance_sql "SELECT count(*) FROM card")
links=$(instance_sql "SELECT count(*) FROM card_link WHERE live")
intervals=$(instance_sql "SELECT count(*) FROM card_link_interval")
backlog=$(instance_sql "SELECT count(*) FROM outbox")
read -r published messages < <(updates_published "$updates" $((2 * N)) 120)
lost=$((2 * N - cards))
twice=$((links - cards + intervals - cards))
echo "r23: sent=$((2 * N)) applied=$cards published=$published (messages $messages) lost=$lost applied_twice=$twice outbox_backlog=$backlog broker_down_shown=$broker_shown api_while_db_down=$api_when_down/$api_code"
ok=1
((cards == 2 * N && lost == 0)) || { echo "r23: FAIL: $cards cards for $((2 * N)) events" >&2; ok=0; }
((twice == 0)) || { echo "r23: FAIL: events applied more than once (links $links, intervals $intervals)" >&2; ok=0; }
((backlog == 0 && published == 2 * N)) || { echo "r23: FAIL: $published of $((2 * N)) cards' updates published, outbox $backlog" >&2; ok=0; }
[[ $broker_shown != up ]] || { echo "r23: FAIL: readiness showed the broker up while it was stopped" >&2; ok=0; }
[[ $api_when_down == 503 && $api_code == 9503 ]] || { echo "r23: FAIL: the API answered $api_when_down ($api_code) without its database, not 503 (9503)" >&2; ok=0; }
((ok == 1)) && echo "r23: PASS" >&2
((ok == 1))
