#!/usr/bin/env bash
# Drill R7 (spec/quality.md): acquirers' uploads through the real HTTPS API with the dev client
# certificates (certs/dev/acquirer.pem, ABI 99999). A token list (GnuPG-encrypted to tkm's key)
# cut off mid-body (curl killed) and one sent as a truncated multipart leave nothing behind (no
# upload row, no file under storage.dir); the same list sent whole afterwards is taken and
# processed; that list and a transaction file sent again answer their original ids and are
# processed once (upload rows, tokens, outcomes unchanged); with storage.dir on a full volume (a
# small tmpfs, root only: skipped with a message otherwise) a list answers 503 (9503) and
# nothing is half-stored, and once there is room again the same list is taken and processed.
# Exits non-zero when the promise breaks; prints the counts.
# Usage: scripts/drills/r7-uploads.sh [token list rows (default 50000)]; TKM_BIN_DIR=target/debug
# to use the debug build (else a release build through cargo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-50000}
K=2000 # transaction records
out=target/bench/r7
store=$ROOT/$out/storage
mkdir -p "$out" "$store"
source scripts/lib-tkm-instance.sh
NAME=drill-r7 KEY=$ROOT/$out/key.asc PUB=$ROOT/$out/key.pub.asc
INSTANCE_API=19343 INSTANCE_OPS=19790 INSTANCE_SIM=19443
INSTANCE_EXTRA_ENV=("TKM__STORAGE__DIR=$store" TKM__BIN_REFRESH__ON_START=false)
drill_setup
gh=$(mktemp -d)
disk=0
mountpoint -q "$store" && umount -l "$store"
if mount -t tmpfs -o size=8m tmpfs "$store" 2>/dev/null; then disk=1; fi
cleanup() {
  instance_stop; instance_drop
  if ((disk == 1)); then umount -l "$store"; fi
  gpgconf --homedir "$gh" --kill all 2>/dev/null || true
  rm -rf "$gh" "$store" "$out"/*.pgp "$out"/*.csv "$out"/*.body
}
trap cleanup EXIT
instance_reset_db
: >"$out/tkm.log"
instance_start "$out/tkm.log"
# Token BIN ranges the lists' tokens fall in (Visa 400000–400999).
instance_sql "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) VALUES ('VISA', '400000', '400999', true, 'r7', 'r7')" >/dev/null
ok=1
fail() { echo "r7: FAIL: $*" >&2; ok=0; }

# Token lists (Visa tokens, ten per PAR; clear only in the pipe to gpg; not compressed, so the
# first one is large enough to be cut off), a TRNLOG file (hashes only).
list() { # ROWS OFFSET FILE
  python3 -c 'import sys
n, o = int(sys.argv[1]), int(sys.argv[2])
sys.stdout.write("".join(f"400{o + i:013d};01;V001{(o + i) // 10:025d}\n" for i in range(n)))' "$1" "$2" \
  | gpg --homedir "$gh" --batch --quiet --trust-model always --recipient-file "$PUB" --compress-algo none --encrypt >"$3"
}
big=TKM.99999.TKNLST.20261205.101500.001.csv.pgp full=TKM.99999.TKNLST.20261205.101500.002.csv.pgp
trn=CSTAR.99999.TRNLOG.20261205.101500.001.csv
list "$N" 0 "$out/$big"
list "$N" $((N * 10)) "$out/$full"
python3 -c 'import hashlib, sys
for i in range(int(sys.argv[1])):
    h = hashlib.sha256(b"r7-%d" % i).hexdigest()
    print(f"99999;00;01;{h};2026-11-20T10:00:00.000+01:00;r7-{i};;;{100 + i};978;acq1;m1;term1;40236010;4900;")' "$K" >"$out/$trn"
upload() { instance_call acquirer "${@:3}" -F "file=@$out/$2;filename=$2" "$1"; }
left() { echo "$(instance_sql "SELECT count(*) FROM upload WHERE filename = '$1'") rows, $(find "$store" -type f ! -name filler | wc -l) files"; }
leftover=0
clean() { # NAME: nothing stored for it within 15 s
  local deadline=$((SECONDS + 15))
  until [[ $(left "$1") == "0 rows, 0 files" ]]; do
    ((SECONDS < deadline)) || { leftover=$((leftover + 1)); return 1; }
    sleep 0.5
  done
}
done_state() { # ID → the upload's end state (DONE, REJECTED, or what it is after 120 s)
  local deadline=$((SECONDS + 120)) s
  while s=$(instance_sql "SELECT state FROM upload WHERE id = '$1'"); [[ $s != DONE && $s != REJECTED ]] && ((SECONDS < deadline)); do sleep 0.5; done
  echo "$s"
}
sent=0 accepted=0

# 1. Cut off: curl killed mid-body (throttled to 64 KiB/s), then a multipart that stops halfway.
size=$(stat -c %s "$out/$big")
((size > 4 * 65536)) || fail "the list is too small ($size bytes) to be cut off; give more rows"
code=0
timeout --foreground -s KILL 2 curl --silent --cacert certs/dev/ca.crt --cert certs/dev/acquirer.pem \
  --limit-rate 64k -F "file=@$out/$big;filename=$big" "https://localhost:$INSTANCE_API/token-list" >/dev/null || code=$?
((code == 137)) || fail "the upload ended (curl exit $code) before it was cut off"
sent=$((sent + 1))
clean "$big" || fail "a killed upload left $(left "$big")"
b=r7drillboundary
{ printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n' "$b" "$big"
  head -c $((size / 2)) "$out/$big"; } >"$out/cut.body"
instance_call acquirer -H "Content-Type: multipart/form-data; boundary=$b" --data-binary "@$out/cut.body" /token-list
sent=$((sent + 1)) truncated=$API_CODE
[[ $truncated != 202 ]] || fail "a truncated multipart was accepted"
clean "$big" || fail "a truncated multipart left $(left "$big")"
echo "r7: cut off: curl killed, truncated multipart (answered $truncated): nothing left" >&2

# 2. The same list whole: taken and processed; again (and the transaction file twice): the same id.
upload /token-list "$big"
sent=$((sent + 1))
taken() { if [[ $API_CODE == 202 ]]; then accepted=$((accepted + 1)); else fail "$1 answered $API_CODE"; fi; }
taken "the list sent whole after the cut"
id=$(jsonq 'j.get("id")' <<<"$API_BODY" 2>/dev/null || echo none)
[[ $(done_state "$id") == DONE ]] || fail "the list was not processed"
rows=$(instance_sql "SELECT rows FROM upload WHERE id = '$id'") tokens=$(instance_sql "SELECT count(*) FROM token")
upload /transactions "$trn"
sent=$((sent + 1))
taken "the transaction file"
tid=$(jsonq 'j.get("id")' <<<"$API_BODY" 2>/dev/null || echo none)
[[ $(done_state "$tid") == DONE ]] || fail "the transaction file was not matched"
outcomes=$(instance_sql "SELECT count(*) FROM txn_outcome WHERE source_id = '$tid'")
same=0
for f in "/token-list $big $id" "/transactions $trn $tid"; do
  read -r path name first <<<"$f"
  upload "$path" "$name"
  sent=$((sent + 1))
  if [[ $API_CODE == 202 && $(jsonq 'j["id"]' <<<"$API_BODY") == "$first" ]]; then same=$((same + 1))
  else fail "$name sent again answered $API_CODE, not its first id"; fi
done
sleep 3 # a second processing would show now
twice=$(( $(instance_sql "SELECT count(*) FROM upload") - 2 ))
[[ $(instance_sql "SELECT rows FROM upload WHERE id = '$id'") == "$rows" && $(instance_sql "SELECT count(*) FROM token") == "$tokens" ]] || twice=$((twice + 1))
[[ $(instance_sql "SELECT count(*) FROM txn_outcome") == "$outcomes" ]] || twice=$((twice + 1))
((twice == 0 && rows == N && outcomes == K)) || fail "processed twice ($twice), rows $rows/$N, outcomes $outcomes/$K"
deadline=$((SECONDS + 15))
until [[ $(find "$store" -type f | wc -l) == 0 ]]; do
  ((SECONDS < deadline)) || { fail "processed files stay on disk: $(find "$store" -type f | wc -l)"; break; }
  sleep 0.5
done
echo "r7: duplicates: $same of 2 answered their first id; $rows rows ($tokens tokens), $outcomes outcomes, processed once" >&2

# 3. A full volume: 503 (9503), nothing half-stored; room again: the same list is taken.
full_code=skipped full_rows=0
if ((disk == 0)); then
  echo "r7: SKIPPED the full disk: cannot mount a tmpfs on $store (needs root)" >&2
else
  avail=$(df --output=avail -B1 "$store" | tail -1)
  head -c $((avail - 32768)) /dev/zero >"$store/filler" 2>/dev/null || true
  upload /token-list "$full"
  sent=$((sent + 1)) full_code="$API_CODE/$(jsonq 'j.get("statusCode")' <<<"$API_BODY" 2>/dev/null || echo none)"
  [[ $full_code == 503/9503 ]] || fail "a full disk answered $full_code, not 503/9503"
  clean "$full" || fail "the full disk left $(left "$full")"
  rm -f "$store/filler"
  upload /token-list "$full"
  sent=$((sent + 1))
  taken "the re-upload after the full disk"
  fid=$(jsonq 'j.get("id")' <<<"$API_BODY" 2>/dev/null || echo none)
  [[ $(done_state "$fid") == DONE ]] || fail "the re-upload was not processed"
  full_rows=$(instance_sql "SELECT rows FROM upload WHERE id = '$fid'")
  ((full_rows == N)) || fail "the re-upload processed $full_rows of $N rows"
fi
lost=$(( N - rows + K - outcomes + (disk == 1 ? N - full_rows : 0) ))
echo "r7: sent=$sent accepted=$accepted cut_off=2 (truncated multipart answered $truncated) left_behind=$leftover duplicates=$same/2_same_id processed_twice=$twice disk_full=$full_code applied_rows=$((rows + full_rows)) outcomes=$outcomes lost=$lost"
((lost == 0)) || fail "$lost rows lost"
((ok == 1)) && echo "r7: PASS" >&2
((ok == 1))
