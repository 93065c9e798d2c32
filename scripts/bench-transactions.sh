#!/usr/bin/env bash
# P4 of spec/quality.md: a TRNLOG file matched end to end (`tkm ingest-transactions`: read,
# checked, matched against the enrolment snapshot, outcomes, keys and payments persisted) against
# a database of CARDS cards (half of them with a PAR: CARDS/2 PARs), TOKENS tokens and one
# citizen per ten cards. In the same run: the snapshot's load and memory, the csv crate parsing
# the file with no hashing (limit 1), the matching core alone (rows/s on one core), and
# PostgreSQL COPY of the same outcome rows into a table shaped like txn_outcome (limit 2).
# Goal: tkm's rate ≥ 0.7 × the slower limit's; target ≥ 250 000 rows/s, peak RSS ≤ 3 GB.
# Usage: scripts/bench-transactions.sh   ROWS=10000000 CARDS=10000000 TOKENS=2000000
#        REUSE=1 (keep and reuse the loaded database between runs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-10000000}
CARDS=${CARDS:-10000000}
TOKENS=${TOKENS:-2000000}
REUSE=${REUSE:-0}
ADMIN_DB=${ADMIN_DB:-postgres://postgres@127.0.0.1:5432/postgres}
DB_NAME=tkm_bench_trn
DB=${ADMIN_DB%/*}/$DB_NAME
out=$ROOT/target/bench/transactions
mkdir -p "$out"
for tool in python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-transactions: $tool is needed (apt-get install python3 time)" >&2; exit 1; }
done
scripts/services.sh
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
cleanup() {
  ((REUSE == 1)) || psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
  rm -rf "$out/storage"
}
trap cleanup EXIT
export TKM__DATABASE__URL=$DB TKM__STORAGE__DIR=$out/storage
now() { date +%s.%N; }
loaded=$(psql "$DB" -XAtc "SELECT count(*) FROM card" 2>/dev/null || echo 0)
if ((REUSE == 0 || loaded != CARDS)); then
  psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -qc "CREATE DATABASE $DB_NAME"
  target/release/tkm --config config/dev.toml migrate >/dev/null
  t0=$(now)
  # Card i: HPAN sha256("card<i>"), PAR of card 2k is P(k); citizen i % (CARDS/10); enrolled
  # 300 days ago, consent since 400 days ago; token j: sha256("token<j>") on P(j).
  psql "$DB" -X -q -v ON_ERROR_STOP=1 <<SQL
SET synchronous_commit = off;
-- A valid fiscal code for citizen c (six letters from c, a fixed birth part, the check character).
CREATE FUNCTION pg_temp.bench_cf(c bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \$\$
DECLARE
  odd int[] := ARRAY[1,0,5,7,9,13,15,17,19,21,2,4,18,20,11,3,6,8,12,14,16,10,22,25,24,23];
  body text := ''; n bigint := c; s int := 0; ch int; v int;
BEGIN
  FOR i IN 1..6 LOOP body := chr(65 + (n % 26)::int) || body; n := n / 26; END LOOP;
  body := body || '85T10A562';
  FOR i IN 1..15 LOOP
    ch := ascii(substr(body, i, 1));
    v := CASE WHEN ch BETWEEN 48 AND 57 THEN ch - 48 ELSE ch - 65 END;
    IF i % 2 = 1 THEN s := s + odd[v + 1]; ELSE s := s + v; END IF;
  END LOOP;
  RETURN body || chr(65 + s % 26);
END \$\$;
CREATE TEMP TABLE cit AS SELECT c AS n, pg_temp.bench_cf(c) AS tc FROM generate_series(0, $CARDS / 10 - 1) c;
INSERT INTO card (hpan, circuit, active, par, par_key, par_source, created_by, updated_by)
SELECT encode(sha256(convert_to('card' || i, 'UTF8')), 'hex'), 'VISA', true,
       CASE WHEN i % 2 = 0 THEN 'V001' || lpad((i / 2)::text, 25, '0') END,
       CASE WHEN i % 2 = 0 THEN 'V001' || lpad((i / 2)::text, 25, '0') END,
       CASE WHEN i % 2 = 0 THEN 'issuer' END, 'bench', 'bench'
FROM generate_series(1, $CARDS) i;
INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by)
SELECT tc, 1, '{"services": {"BPD": "Allow", "FA": "Allow"}}', 'bench', 'bench' FROM cit;
INSERT INTO consent_history (tax_code, version, at, request, after, created_by, updated_by)
SELECT tax_code, 1, now() - interval '400 days', '{}', state, 'bench', 'bench' FROM consent_citizen;
INSERT INTO card_link (card_id, tax_code, live, opened_at, changed_at, created_by, updated_by)
SELECT i, cit.tc, true, now() - interval '300 days', now() - interval '300 days', 'bench', 'bench'
FROM generate_series(1, $CARDS) i JOIN cit ON cit.n = i % ($CARDS / 10);
INSERT INTO card_link_interval (card_id, tax_code, opened_at, created_by, updated_by)
SELECT card_id, tax_code, opened_at, 'bench', 'bench' FROM card_link;
INSERT INTO token (htoken, circuit, par, par_key, source, created_by, updated_by)
SELECT encode(sha256(convert_to('token' || j, 'UTF8')), 'hex'), 'VISA',
       'V001' || lpad(j::text, 25, '0'), 'V001' || lpad(j::text, 25, '0'), 'issuer', 'bench', 'bench'
FROM generate_series(1, $TOKENS) j;
INSERT INTO award_period (id, starts_on, ends_on, grace_days, created_by, updated_by)
VALUES ('bench', current_date - 365, current_date + 30, 30, 'bench', 'bench');
VACUUM ANALYZE;
SQL
  t1=$(now)
  echo "bench: database loaded in $(python3 -c "print(f'{$t1 - $t0:.0f}')") s" >&2
else
  psql "$DB" -X -q -c "TRUNCATE txn_outcome, txn_key, txn_payment, txn_reversal" \
    -c "DELETE FROM upload" -c "DELETE FROM outbox" -c "DELETE FROM token WHERE source <> 'issuer'" -c "VACUUM ANALYZE"
fi

# The file (see scripts/bench-transactions-gen.py).
name="CSTAR.99999.TRNLOG.20261204.010000.001.csv"
python3 scripts/bench-transactions-gen.py "$ROWS" "$CARDS" "$TOKENS" "$out/$name"
mb=$(du -m "$out/$name" | cut -f1)
echo "bench: $ROWS rows, ${mb} MB" >&2

# In-process: snapshot load and memory, csv limit, tkm's reader, the matching core.
core=$(target/release/tkm-bench match-core --database "$DB" --file "$out/$name" --salt bench)
echo "bench: $core" >&2

# tkm end to end.
/usr/bin/time -o "$out/time.txt" -f "%e %M" \
  target/release/tkm --config config/dev.toml ingest-transactions "$out/$name" >"$out/ingest.txt" 2>"$out/ingest.err" \
  || { cat "$out/ingest.err" >&2; exit 1; }
read -r tkm_s rss_kb <"$out/time.txt"
cat "$out/ingest.txt" >&2

# Limit 2: COPY of the same outcome rows into a table shaped and keyed like txn_outcome.
psql "$DB" -X -q -c "\\copy (SELECT source_id, line, processing_day, id_trx_acquirer, outcome, reason, match, detail FROM txn_outcome) TO '$out/outcomes.bin' WITH (FORMAT binary)"
psql "$DB" -X -q -c "DROP TABLE IF EXISTS bench_outcome" -c "CREATE TABLE bench_outcome (LIKE txn_outcome INCLUDING ALL)"
t0=$(now)
psql "$DB" -X -q -c "\\copy bench_outcome (source_id, line, processing_day, id_trx_acquirer, outcome, reason, match, detail) FROM '$out/outcomes.bin' WITH (FORMAT binary)"
t1=$(now)
copy_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
psql "$DB" -X -q -c "DROP TABLE bench_outcome"
rm -f "$out/outcomes.bin"
echo "bench: tkm ${tkm_s} s (peak RSS $((rss_kb / 1024)) MB), COPY of the outcomes ${copy_s} s" >&2

{
  echo "### P4 — transaction file end to end ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-transactions.sh\` (ROWS=$ROWS CARDS=$CARDS TOKENS=$TOKENS): a plain TRNLOG of $ROWS rows (${mb} MB; 60 % HPAN, 10 % HTOKEN, 5 % PAR-only, 24 % unknown, 1 % reversals) through \`tkm ingest-transactions\` (release build) against $CARDS cards, $((CARDS / 2)) PARs, $TOKENS tokens; limits in the same run: the csv crate reading the file (no hashing) and \`psql \\copy\` (binary) of the same outcome rows into a table keyed like \`txn_outcome\`. Ratio = tkm rows/s ÷ the slower limit's rows/s (goal ≥ 0.7)."
  echo
  python3 scripts/bench-transactions-report.py "$core" "$ROWS" "$tkm_s" "$rss_kb" "$copy_s"
} | tee "$out/report.md"
