#!/usr/bin/env bash
# Issue 17: the PAR queue's cost at scale. Loads a benchmark database with COPY (rows generated
# by the server, streamed back in through COPY FROM STDIN, the schema's indexes and constraints
# in place) with
# CARDS cards (one consenting citizen per 4; OWED of them without PAR, half of those queued),
# TOKENS token-list tokens each owed a check, then times the resolver's own statements with
# `tkm-bench par-queue`: a lease of PAGE lookups per lane, the queueing of a card batch, a sweep
# step — and the limit in the same run, a primary-key read of PAGE cards.
# Usage: scripts/bench-par-queue.sh
#   CARDS=10000000 TOKENS=2000000 OWED=200000 PAGE=100 ROUNDS=200   sizes
#   KEEP=1   keep the database (tkm_bench_par_queue) for EXPLAIN afterwards
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARDS=${CARDS:-10000000}
TOKENS=${TOKENS:-2000000}
OWED=${OWED:-200000}
PAGE=${PAGE:-100}
ROUNDS=${ROUNDS:-200}
KEEP=${KEEP:-0}
ADMIN_DB=${ADMIN_DB:-postgres://postgres@127.0.0.1:5432/postgres}
DB_NAME=tkm_bench_par_queue
DB=${ADMIN_DB%/*}/$DB_NAME
out=target/bench/par-queue
mkdir -p "$out"

need_gib=$(( (CARDS / 1000000) + 4 ))
free_gib=$(df --output=avail -BG / | tail -1 | tr -dc 0-9)
if (( free_gib < need_gib )); then
  echo "bench-par-queue: about ${need_gib} GiB of disk needed, ${free_gib} GiB free; lower CARDS or free space" >&2
  exit 1
fi

scripts/services.sh
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
cleanup() { ((KEEP == 1)) || psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"; }
trap cleanup EXIT

psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -qc "CREATE DATABASE $DB_NAME"
TKM__DATABASE__URL=$DB target/release/tkm --config config/dev.toml migrate >/dev/null

source scripts/lib-bench-profile.sh
step() {
  local what=$1; shift
  local t0=$SECONDS
  printf 'bench: %-58s' "$what…" >&2
  psql "$DB" -q -v ON_ERROR_STOP=1 -c "SET synchronous_commit = off" "$@"
  echo " $((SECONDS - t0)) s" >&2
}
# copy_step WHAT "TABLE (COLUMNS)" QUERY
copy_step() {
  local what=$1 t0=$SECONDS
  printf 'bench: %-58s' "$what…" >&2
  copy_rows "$DB" "$2" "$3"
  echo " $((SECONDS - t0)) s" >&2
}

citizens=$(( (CARDS + 3) / 4 ))
# Sequential hashes keep the unique indexes' inserts at their right edge (a load time matter
# only: the statements measured never search by hash).
copy_step "$citizens consenting citizens" "consent_citizen (tax_code, version, state, created_by, updated_by)" "
  SELECT 'PQ' || lpad(i::text, 14, '0'), 1, '{\"services\": {\"BPD\": \"Allow\", \"FA\": \"Allow\"}}', 'bench', 'bench'
  FROM generate_series(1, $citizens) AS i"
copy_step "$CARDS cards ($OWED without PAR)" "card (hpan, pan_key_id, pan_ct, pan_last4, circuit, par, par_key, par_source, active, created_by, updated_by)" "
  SELECT lpad(to_hex(i), 64, '0'), 'dev1', sha256(('ct-' || i)::bytea), lpad((i % 10000)::text, 4, '0'), 'VISA',
         CASE WHEN i > $OWED THEN 'V001PQ' || lpad(i::text, 23, '0') END,
         CASE WHEN i > $OWED THEN 'V001PQ' || lpad(i::text, 23, '0') END,
         CASE WHEN i > $OWED THEN 'issuer' END, true, 'bench', 'bench'
  FROM generate_series(1, $CARDS) AS i"
copy_step "$CARDS live links" "card_link (card_id, tax_code, live, opened_at, changed_at, published, created_by, updated_by)" "
  SELECT i, 'PQ' || lpad(((i - 1) / 4 + 1)::text, 14, '0'), true, now(), now(), true, 'bench', 'bench'
  FROM generate_series(1, $CARDS) AS i"
copy_step "$TOKENS token-list tokens" "token (htoken, token_key_id, token_ct, token_last4, circuit, source, created_by, updated_by)" "
  SELECT '1' || lpad(to_hex(i), 63, '0'), 'dev1', sha256(('tct-' || i)::bytea), lpad((i % 10000)::text, 4, '0'),
         'VISA', 'token-list', 'bench', 'bench'
  FROM generate_series(1, $TOKENS) AS i"
copy_step "lookups: $((OWED / 2)) cards" "par_lookup (subject, subject_id, circuit, priority, next_at, created_by, updated_by)" "
  SELECT 'card', i, 'VISA', (i % 10 = 0)::int, now() - interval '1 hour' + i * interval '1 ms', 'bench', 'bench'
  FROM generate_series(1, $OWED / 2) AS i"
copy_step "lookups: $TOKENS tokens" "par_lookup (subject, subject_id, circuit, next_at, created_by, updated_by)" "
  SELECT 'token', id, 'VISA', now() - interval '1 hour' + id * interval '1 ms', 'bench', 'bench' FROM token"
step "VACUUM ANALYZE" -c "VACUUM ANALYZE"

size=$(psql "$DB" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "bench: database $size; timing the queue's statements ($ROUNDS rounds each)" >&2
json=$(target/release/tkm-bench par-queue --database "$DB" --rounds "$ROUNDS" --page "$PAGE")
echo "$json" >"$out/report.json"

# The plans, for the record (a lease's pick, a sweep page).
psql "$DB" -At >"$out/plans.txt" <<'SQL'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT subject, subject_id FROM par_lookup WHERE circuit = 'VISA' AND state = 'pending' AND subject = 'card' AND next_at <= now() AND (leased_until IS NULL OR leased_until < now()) ORDER BY priority, next_at LIMIT 100 FOR UPDATE SKIP LOCKED;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT subject, subject_id FROM par_lookup WHERE circuit = 'VISA' AND state = 'pending' AND subject = 'token' AND next_at <= now() AND (leased_until IS NULL OR leased_until < now()) ORDER BY next_at LIMIT 100 FOR UPDATE SKIP LOCKED;
SQL

python3 - "$json" "$size" <<'PY' | tee "$out/report.md"
import json, sys
r = json.loads(sys.argv[1]); size = sys.argv[2]
print(f"Database: {r['cards']:,} cards, {r['tokens']:,} tokens, {size}; pending lookups "
      f"{r['pending_cards']:,} cards, {r['pending_tokens']:,} tokens.\n")
print("| statement | rounds | rows/round | p50 ms | p95 ms | max ms | p95 / limit p95 |")
print("|---|---:|---:|---:|---:|---:|---:|")
limit = r['pk_read']['p95_ms'] or 1e-9
for key, name in [("lease_cards", "lease, card lane"), ("lease_tokens", "lease, token lane"),
                  ("enqueue_batch", "queue a batch's card lookups (512)"),
                  ("sweep_step", "one sweep step"), ("pk_read", "limit: cards by primary key")]:
    t = r[key]
    print(f"| {name} | {t['rounds']} | {t['rows']:.0f} | {t['p50_ms']:.2f} | {t['p95_ms']:.2f} "
          f"| {t['max_ms']:.2f} | {t['p95_ms'] / limit:.1f} |")
PY
