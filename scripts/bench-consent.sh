#!/usr/bin/env bash
# Benchmark P1 and P2 of spec/quality.md over real mutual TLS with ApacheBench (`ab -E`):
#   limit  nginx serving a 2-byte answer over the same mTLS (dev server cert, client cert
#          required), and tkm's trivial GET /health/live on the same listener
#   P1     GET /consent/status and GET /consent, keep-alive, 64 connections
#   P2     POST /consent (transaction + history + outbox), 64 connections over 32 citizens whose
#          consent flips at every request
# Prints a Markdown report (also written to target/bench/consent.md).
# Usage: scripts/bench-consent.sh [requests-per-GET-run (default 300000)]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300000}
C=64
API=18443 OPS=19090 NGINX=18444
DB=tkm_bench
ADMIN=postgres://postgres@127.0.0.1:5432/postgres
out=target/bench
mkdir -p "$out"

need() { command -v "$1" >/dev/null 2>&1 || {
  echo "bench: installing $2"; apt-get install -y -q "$2" >/dev/null; }; }
need ab apache2-utils
need nginx nginx-light
scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/dev-secrets.sh >/dev/null
scripts/build-release.sh --quiet --features simulator

psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -qc "CREATE DATABASE $DB"

cleanup() {
  [[ -n "${tkm_pid:-}" ]] && kill -TERM "$tkm_pid" 2>/dev/null || true
  [[ -f "$out/nginx.pid" ]] && kill "$(cat "$out/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

TKM__SERVER__BIND=127.0.0.1:$API TKM__SERVER__OPS_BIND=127.0.0.1:$OPS \
TKM__DATABASE__URL=postgres://postgres@127.0.0.1:5432/$DB TKM__TELEMETRY__JSON=true TKM__TELEMETRY__LEVEL=${TKM_BENCH_LOG_LEVEL:-info} \
  target/release/tkm --config config/dev.toml serve >"$out/tkm.log" 2>&1 &
tkm_pid=$!

here=$(pwd)
cat >"$out/nginx.conf" <<CONF
worker_processes 2;
pid $here/$out/nginx.pid;
error_log $here/$out/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$NGINX ssl;
    ssl_certificate $here/certs/dev/server.crt;
    ssl_certificate_key $here/certs/dev/server.key;
    ssl_client_certificate $here/certs/dev/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
CONF
nginx -c "$here/$out/nginx.conf"

deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$OPS/health/ready" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || { echo "tkm not ready; see $out/tkm.log" >&2; exit 1; }
  sleep 0.3
done

curl_io() { curl -sS --cacert certs/dev/ca.crt --cert certs/dev/io.crt --key certs/dev/io.key "$@"; }
TC=RSSMRA85T10A562S
curl_io -o /dev/null -H "Tax-Code: $TC" -H 'Client-Id: bench' -H 'Content-Type: application/json' \
  -d '{"consent":"Deny","services":["FA"]}' "https://127.0.0.1:$API/consent"
curl_io -o /dev/null -H "Tax-Code: $TC" -H 'Client-Id: bench' -H 'Content-Type: application/json' \
  -d '{"consent":"Allow","services":["BPD"]}' "https://127.0.0.1:$API/consent"

# ab run → "rps p50 p99 failures"; $1 label, rest: ab args.
run_ab() {
  local label=$1; shift
  ab -q -k -c "$C" -n "$N" -E certs/dev/io.pem "$@" >"$out/$label.txt" 2>&1 || true
  local rps p50 p99 fail non2xx
  rps=$(awk '/^Requests per second/ {print $4}' "$out/$label.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/$label.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$label.txt")
  fail=$(awk '/^Failed requests/ {print $3}' "$out/$label.txt")
  non2xx=$(awk '/^Non-2xx responses/ {print $3}' "$out/$label.txt")
  echo "${rps:-0} ${p50:-?} ${p99:-?} $(( ${fail:-0} + ${non2xx:-0} ))"
}

# Warm-up (caches, connection set-up paths).
ab -q -k -c "$C" -n 20000 -E certs/dev/io.pem -H "Tax-Code: $TC" \
  "https://127.0.0.1:$API/consent/status?service=BPD" >/dev/null 2>&1 || true

nginx_r=$(run_ab nginx "https://127.0.0.1:$NGINX/")
live_r=$(run_ab live "https://127.0.0.1:$API/health/live")
status_r=$(run_ab status -H "Tax-Code: $TC" "https://127.0.0.1:$API/consent/status?service=BPD")
consent_r=$(run_ab consent -H "Tax-Code: $TC" "https://127.0.0.1:$API/consent")

# The P2 limit: PostgreSQL alone running the same transaction from 64 clients (pgbench).
dburl=postgres://postgres@127.0.0.1:5432/$DB
psql -q "$dburl" -c "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by)
  SELECT 'BENCH' || lpad(n::text, 11, '0'), 1000000, '{\"cards\": {}, \"services\": {\"BPD\": \"Deny\", \"FA\": \"Deny\"}}',
  'bench', 'bench' FROM generate_series(1, 64) n ON CONFLICT DO NOTHING"
pgbench -n -M prepared -c 64 -j 2 -T 15 -f scripts/bench-consent-tx.sql "$dburl" >"$out/pgbench.txt" 2>&1 || true
pg_tps=$(awk '/^tps =/ {printf "%d", $3}' "$out/pgbench.txt")
pg_lat=$(awk '/^latency average/ {print $4}' "$out/pgbench.txt")

# P2: 32 citizens, two connections each, one posting Allow and one Deny for BPD: every request is a
# committed change (history row); most flip the state (outbox row); same-citizen requests queue on
# the citizen's lock as the spec wants.
PER=${P2_REQUESTS_PER_CONNECTION:-1500}
printf '{"consent":"Allow","services":["BPD"]}' >"$out/allow.json"
printf '{"consent":"Deny","services":["BPD"]}' >"$out/deny.json"
codes=$(python3 - <<'PY'
import random, string
ODD=[1,0,5,7,9,13,15,17,19,21,2,4,18,20,11,3,6,8,12,14,16,10,22,25,24,23]
random.seed(7)
for _ in range(32):
    body=''.join(random.choice(string.ascii_uppercase) for _ in range(6))+"85T10A562"
    s=sum(ODD[int(c) if c.isdigit() else ord(c)-65] if i%2==0 else (int(c) if c.isdigit() else ord(c)-65) for i,c in enumerate(body))
    print(body+chr(65+s%26))
PY
)
for tc in $codes; do
  curl_io -o /dev/null -H "Tax-Code: $tc" -H 'Client-Id: bench' -H 'Content-Type: application/json' \
    -d '{"consent":"Deny"}' "https://127.0.0.1:$API/consent"
done
rm -f "$out"/p2-*.tsv "$out"/p2-*.txt
start=$(date +%s.%N)
pids=()
i=0
for tc in $codes; do
  for kind in allow deny; do
    ab -q -k -c 1 -n "$PER" -E certs/dev/io.pem -p "$out/$kind.json" -T application/json \
      -H "Tax-Code: $tc" -H 'Client-Id: bench' -g "$out/p2-$i-$kind.tsv" \
      "https://127.0.0.1:$API/consent" >"$out/p2-$i-$kind.txt" 2>&1 &
    pids+=($!)
  done
  i=$((i + 1))
done
for p in "${pids[@]}"; do wait "$p" || true; done
end=$(date +%s.%N)
p2_total=$(( 64 * PER ))
p2_rps=$(python3 -c "print(round($p2_total / ($end - $start)))")
p2_lat=$(cat "$out"/p2-*.tsv | awk -F'\t' 'NR>1 && $1!="starttime" {print $5}' | sort -n | awk '
  {v[NR]=$1} END {printf "%s %s", v[int(NR*0.5)], v[int(NR*0.99)]}')
p2_fail=$(cat "$out"/p2-*.txt | awk '/^Failed requests/ {f+=$3} /^Non-2xx responses/ {f+=$3} END {print f+0}')
counts=$(psql "postgres://postgres@127.0.0.1:5432/$DB" -Atqc \
  "SELECT (SELECT count(*) FROM consent_history WHERE tax_code NOT LIKE 'BENCH%'),
          (SELECT count(*) FROM outbox WHERE partition_key NOT LIKE 'BENCH%')")

# P2, no contention: 64 citizens, one connection each. The body repeats, so after the first
# request each one is a committed no-op change (transaction + history row, no outbox row).
codes64=$(python3 - <<'PY'
import random, string
ODD=[1,0,5,7,9,13,15,17,19,21,2,4,18,20,11,3,6,8,12,14,16,10,22,25,24,23]
random.seed(11)
for _ in range(64):
    body=''.join(random.choice(string.ascii_uppercase) for _ in range(6))+"85T10A562"
    s=sum(ODD[int(c) if c.isdigit() else ord(c)-65] if i%2==0 else (int(c) if c.isdigit() else ord(c)-65) for i,c in enumerate(body))
    print(body+chr(65+s%26))
PY
)
rm -f "$out"/p2b-*
start=$(date +%s.%N)
pids=()
i=0
for tc in $codes64; do
  ab -q -k -c 1 -n "$PER" -E certs/dev/io.pem -p "$out/allow.json" -T application/json \
    -H "Tax-Code: $tc" -H 'Client-Id: bench' -g "$out/p2b-$i.tsv" \
    "https://127.0.0.1:$API/consent" >"$out/p2b-$i.txt" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
for p in "${pids[@]}"; do wait "$p" || true; done
end=$(date +%s.%N)
p2b_rps=$(python3 -c "print(round($p2_total / ($end - $start)))")
p2b_lat=$(cat "$out"/p2b-*.tsv | awk -F'\t' 'NR>1 && $1!="starttime" {print $5}' | sort -n | awk '
  {v[NR]=$1} END {printf "%s %s", v[int(NR*0.5)], v[int(NR*0.99)]}')
p2b_fail=$(cat "$out"/p2b-*.txt | awk '/^Failed requests/ {f+=$3} /^Non-2xx responses/ {f+=$3} END {print f+0}')

read -r n_rps n_p50 n_p99 n_f <<<"$nginx_r"
read -r l_rps l_p50 l_p99 l_f <<<"$live_r"
read -r s_rps s_p50 s_p99 s_f <<<"$status_r"
read -r g_rps g_p50 g_p99 g_f <<<"$consent_r"
read -r p_p50 p_p99 <<<"$p2_lat"
read -r q_p50 q_p99 <<<"$p2b_lat"
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
{
  echo "### P1/P2 — consent API over mTLS ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-consent.sh $N\` — ApacheBench $(ab -V | awk '/Version/ {print $5}'), \`-k -c $C -n $N -E io.pem\`, load generator on the same machine; tkm release build, 2 HTTP workers, JSON access logs on."
  echo
  echo "| run | req/s | p50 ms | p99 ms | errors | vs nginx |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| limit: nginx 2-byte answer, same mTLS | $n_rps | $n_p50 | $n_p99 | $n_f | 1.00 |"
  echo "| limit: tkm \`GET /health/live\` (same listener) | $l_rps | $l_p50 | $l_p99 | $l_f | $(ratio "$l_rps" "$n_rps") |"
  echo "| **P1** \`GET /consent/status?service=BPD\` | $s_rps | $s_p50 | $s_p99 | $s_f | $(ratio "$s_rps" "$n_rps") |"
  echo "| **P1** \`GET /consent\` | $g_rps | $g_p50 | $g_p99 | $g_f | $(ratio "$g_rps" "$n_rps") |"
  echo "| limit: PostgreSQL alone, the same transaction (pgbench -c 64, avg ${pg_lat} ms) | ${pg_tps} | | | | |"
  echo "| **P2** \`POST /consent\`, state flips, 2 conns per citizen ($p2_total req) | $p2_rps | $p_p50 | $p_p99 | $p2_fail | — |"
  echo "| **P2** \`POST /consent\`, 1 conn per citizen, no lock waits ($p2_total req) | $p2b_rps | $q_p50 | $q_p99 | $p2b_fail | — |"
  echo
  echo "The first P2 run wrote history/outbox rows: ${counts/|/ / } (history = every accepted request; outbox = every actual state change). Its latency includes waiting for the other connection's transaction on the same citizen (changes are serialised per tax code); the second run has no such waits."
} | tee "$out/consent.md"
