#!/usr/bin/env bash
# Drill R4 (spec/quality.md): poison messages mixed into a stream of card events. In each of 5
# rounds, a share of the good events (consenting citizens, one VISA card each with its PAR, through
# tkm-bench) goes between 13 poison messages: not PGP, PGP to another key, a clear card event
# that was never encrypted, PGP around text that is not JSON, a JSON string, a short pan, a clear
# PAN in the hpan field, no circuit, a bad timestamp, no citizen and no PAR, an unknown circuit,
# an hpan that is not the pan's hash, 70 KiB. Checks that each poison message is dead-lettered
# with its reason (the dead_letter table by code, the copies in the dead-letter queue) and no
# copy, reason or log line holds the clear card number; that every good event is applied exactly
# once (cards, live links, intervals) and its card update published once; nothing lost.
# Exits non-zero when the promise breaks; prints the counts.
# Usage: scripts/drills/r4-poison.sh [good events (default 10000)]; TKM_BIN_DIR=target/debug to
# use the debug build (else a release build with the simulator and tkm-bench, through cargo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-10000}
ROUNDS=5
out=target/bench/r4
mkdir -p "$out"
source scripts/lib-tkm-instance.sh
NAME=drill-r4 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=18943 INSTANCE_OPS=19490 INSTANCE_SIM=19043
INSTANCE_EXTRA_ENV=("TKM__STORAGE__DIR=$ROOT/$out/storage")
for tool in amqp-publish amqp-consume gpg python3; do
  command -v "$tool" >/dev/null || { echo "r4: $tool is needed (apt-get install amqp-tools gnupg python3)" >&2; exit 1; }
done
drill_setup
"$BIN_DIR/tkm" pgp generate --out-private "$out/other.asc" --out-public "$out/other.pub.asc" --force >/dev/null
gh=$(mktemp -d)
cleanup() { instance_stop; instance_drop; gpgconf --homedir "$gh" --kill all 2>/dev/null || true; rm -rf "$gh" "$out/storage"; }
trap cleanup EXIT
instance_reset_db
: >"$out/tkm.log"
: >"$out/bench.json"
: >"$out/bench.log"
instance_start "$out/tkm.log"
events=tkm-read-token-par-pan.$NAME updates=tkm-write-update-token.$NAME dlq=tkm-dlq.$NAME

# Poison senders: raw bytes; JSON encrypted by `tkm publish-card-event` (to tkm's key or another).
raw() { amqp-publish -u "$INSTANCE_AMQP" -r "$events" -p; }
# shellcheck disable=SC2046 # one NAME=value per word, as instance_start passes them
sealed() { env $(instance_env) "$@" "$BIN_DIR/tkm" --config config/dev.toml publish-card-event >/dev/null; }
# The canary: a card number only this run knows; it must come out of no dead letter or log.
canary=4999$(printf '%06d%06d' $((RANDOM * 32768 + RANDOM)) $((RANDOM % 1000000)) | cut -c1-12)
tc=RSSMRA85T10A562S ts="2026-11-23 10:00:00:0000"
poison_first_half() {
  printf 'not a pgp message' | raw                                                   # UNDECRYPTABLE
  echo "{\"taxCode\":\"$tc\",\"pan\":\"$canary\",\"circuit\":\"VISA\"}" \
    | sealed TKM__PGP__PUBLIC_KEY_FILE="$ROOT/$out/other.pub.asc"                   # UNDECRYPTABLE
  printf '{"taxCode":"%s","pan":"%s","circuit":"VISA"}' "$tc" "$canary" | raw      # UNDECRYPTABLE
  printf '{this is not json' | gpg --homedir "$gh" --batch --quiet --trust-model always \
    --recipient-file "$PUB" --encrypt | raw                                          # NOT_JSON
  head -c 71680 /dev/zero | tr '\0' x | raw                                          # TOO_LARGE
  echo '"just a string"' | sealed                                                    # INVALID_FIELD
}
poison_second_half() {
  {
    echo "{\"taxCode\":\"$tc\",\"pan\":\"12345\",\"circuit\":\"VISA\"}"                 # INVALID_FIELD
    echo "{\"taxCode\":\"$tc\",\"hpan\":\"$canary\",\"circuit\":\"VISA\"}"              # INVALID_FIELD
    echo "{\"taxCode\":\"$tc\",\"pan\":\"$canary\"}"                                    # INVALID_FIELD
    echo "{\"taxCode\":\"$tc\",\"pan\":\"$canary\",\"circuit\":\"VISA\",\"timestamp\":\"yesterday\"}" # INVALID_FIELD
    echo "{\"hpan\":\"$(printf 'a%.0s' {1..64})\",\"circuit\":\"VISA\"}"               # INCONSISTENT_MESSAGE
    echo "{\"taxCode\":\"$tc\",\"pan\":\"$canary\",\"circuit\":\"DINERS\"}"             # UNSUPPORTED_CIRCUIT
    echo "{\"taxCode\":\"$tc\",\"pan\":\"$canary\",\"hpan\":\"$(printf 'e%.0s' {1..64})\",\"circuit\":\"VISA\",\"timestamp\":\"$ts\"}" # HASH_MISMATCH
  } | sealed
}
expected="HASH_MISMATCH=1 INCONSISTENT_MESSAGE=1 INVALID_FIELD=5 NOT_JSON=1 TOO_LARGE=1 UNDECRYPTABLE=3 UNSUPPORTED_CIRCUIT=1"
per_round=13
P=$((per_round * ROUNDS))

echo "r4: $ROUNDS rounds of poison, $((N / ROUNDS)) good events, poison" >&2
start=$SECONDS
sent_good=0
for r in $(seq 1 "$ROUNDS"); do
  n=$(( r == ROUNDS ? N - sent_good : N / ROUNDS ))
  poison_first_half
  "$BIN_DIR/tkm-bench" card-events --events "$n" --cards-per-citizen 1 --publish-only \
    --database "$(instance_db_url)" --events-queue "$events" --public-key "$PUB" \
    --prefix $((4100 + r)) >>"$out/bench.json" 2>>"$out/bench.log"
  sent_good=$((sent_good + n))
  poison_second_half
done

deadline=$((SECONDS + 600))
until (( $(instance_sql "SELECT count(*) FROM card") >= N && $(instance_sql "SELECT count(*) FROM dead_letter") >= P )) \
    && (( $(instance_sql "SELECT count(*) FROM outbox") == 0 )); do
  ((SECONDS < deadline)) || { echo "r4: FAIL: the stream did not drain in 600 s (see $out/tkm.log)" >&2; break; }
  sleep 0.5
done
took=$((SECONDS - start))
sleep 1 # anything applied or dead-lettered twice would show now
instance_stop

cards=$(instance_sql "SELECT count(*) FROM card")
links=$(instance_sql "SELECT count(*) FROM card_link WHERE live")
intervals=$(instance_sql "SELECT count(*) FROM card_link_interval")
backlog=$(instance_sql "SELECT count(*) FROM outbox")
dead=$(instance_sql "SELECT count(*) FROM dead_letter")
codes=$(instance_sql "SELECT string_agg(code || '=' || n / $ROUNDS, ' ' ORDER BY code) FROM (SELECT code, count(*) n FROM dead_letter GROUP BY code) c")
uneven=$(instance_sql "SELECT count(*) FROM (SELECT code FROM dead_letter GROUP BY code HAVING count(*) % $ROUNDS <> 0) c")
leaks=$(instance_sql "SELECT count(*) FROM dead_letter WHERE reason LIKE '%$canary%' OR reason ~ '[0-9]{12}'")
leaks=$((leaks + $(grep -c "$canary" "$out/tkm.log" || true)))
# The dead-letter queue's copies (their sizes; the bodies kept to look for the canary) and the
# card updates (compact JSON bodies, one after another), drained.
: >"$out/dlq.bin"
drain() { timeout "$3" amqp-consume -u "$INSTANCE_AMQP" -q "$1" -c "$2" -p 1000 -- "${@:4}" || true; }
copies=$(drain "$dlq" "$P" 30 sh -c "tee -a $out/dlq.bin | wc -c" | wc -l)
extra=$(drain "$dlq" 1000 3 wc -c | wc -l)
leaks=$((leaks + $(grep -ac "$canary" "$out/dlq.bin" || true)))
rm -f "$out/dlq.bin"
read -r published updates < <(updates_published "$updates" "$N" 120)
pos() { echo $(( $1 > 0 ? $1 : 0 )); }
lost=$(pos $(( N + P - cards - dead )))
dups=$(( $(pos $((links - cards))) + $(pos $((intervals - cards))) + updates - published + $(pos $((dead - P))) + extra ))
echo "r4: sent=$((N + P)) (good=$N poison=$P) applied=$cards dead_lettered=$dead [$codes per round] copies_in_dlq=$copies published=$published lost=$lost duplicates=$dups canary_leaks=$leaks outbox_backlog=$backlog seconds=$took"
ok=1
(( cards == N && links == N && intervals == N )) || { echo "r4: FAIL: $N good events gave $cards cards, $links live links, $intervals intervals" >&2; ok=0; }
(( dead == P && copies == P )) || { echo "r4: FAIL: $P poison messages, $dead dead letters, $copies copies in $dlq" >&2; ok=0; }
[[ "$codes" == "$expected" && $uneven == 0 ]] || { echo "r4: FAIL: reasons per round '$codes', expected '$expected'" >&2; ok=0; }
(( published == N && updates == N && backlog == 0 )) || { echo "r4: FAIL: $published of $N cards' updates published ($updates messages), outbox $backlog" >&2; ok=0; }
(( lost == 0 && dups == 0 )) || { echo "r4: FAIL: lost $lost, duplicates $dups" >&2; ok=0; }
(( leaks == 0 )) || { echo "r4: FAIL: the clear card number is in $leaks dead letters or log lines" >&2; ok=0; }
(( ok == 1 )) && echo "r4: PASS" >&2
(( ok == 1 ))
