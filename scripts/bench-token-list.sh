#!/usr/bin/env bash
# P7 of spec/quality.md: a 1 M-row PGP-encrypted token list end to end (decrypted, every row
# checked, applied through the card registry with its progress, queued for the resolver) in
# ≤ 60 s. Measures `tkm ingest-token-list` on a fresh benchmark database and, in the same run,
# the two limits the goal is set against:
#   gpg --decrypt of the same file                  (decryption and decompression alone)
#   psql \copy of the same rows into a token table  (the database writing them alone)
# Goal: tkm's rate ≥ 0.5 × the slower limit's.
# It also reports PostgreSQL's statements during tkm's run (pg_stat_statements, switched on for
# the benchmark and off again; PGSS=0 skips it and the restart it needs).
# Usage: scripts/bench-token-list.sh      ROWS=1000000   KEEP=1 (keep the database)   PGSS=0
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-1000000}
KEEP=${KEEP:-0}
PGSS=${PGSS:-1}
ADMIN_DB=${ADMIN_DB:-postgres://postgres@127.0.0.1:5432/postgres}
DB_NAME=tkm_bench_tokens
DB=${ADMIN_DB%/*}/$DB_NAME
out=$ROOT/target/bench/token-list
mkdir -p "$out"
for tool in gpg python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-token-list: $tool is needed (apt-get install gnupg python3 time)" >&2; exit 1; }
done

source scripts/lib-bench-profile.sh
scripts/services.sh
scripts/build-release.sh --quiet --features simulator
scripts/dev-secrets.sh target/release/tkm >/dev/null
home=$(mktemp -d)
cleanup() {
  pgss_off
  ((KEEP == 1)) || psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
  rm -rf "$home" "$out/storage" "$out/in"
}
trap cleanup EXIT
psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -qc "CREATE DATABASE $DB_NAME"
export TKM__DATABASE__URL=$DB TKM__STORAGE__DIR=$out/storage
target/release/tkm --config config/dev.toml migrate >/dev/null
psql "$DB" -X -q -c "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) VALUES
  ('VISA', '400000', '400999', true, 'bench', 'bench'),
  ('AMEX', '370000', '379999', true, 'bench', 'bench')"

# The list: Visa, Mastercard and Amex rows in turn, ten tokens per PAR; and the same rows as the
# token table would hold them (hash, sealed token, PAR), for the COPY limit.
name="TKM.99999.TKNLST.20261204.010000.001.csv"
mkdir -p "$out/in"
python3 - "$ROWS" "$out/in/$name" "$out/in/rows.csv" <<'EOF'
import hashlib, os, sys
rows, plain, table = int(sys.argv[1]), sys.argv[2], sys.argv[3]
circuits = [("01", "VISA", "4000", "V001"), ("02", "MASTERCARD", "5300", "5001"), ("03", "AMEX", "3700", "A001")]
with open(plain, "w") as p, open(table, "w") as t:
    for i in range(rows):
        code, name, prefix, par_prefix = circuits[i % 3]
        token = f"{prefix}{i:012d}"
        par = f"{par_prefix}{i // 30:025d}"
        p.write(f"{token};{code};{par}\n")
        htoken = hashlib.sha256(token.encode()).hexdigest()
        sealed = os.urandom(44).hex()
        t.write(f"{htoken},dev1,\\\\x{sealed},{token[-4:]},{name},{par},{par.upper()},token-list,bench,bench\n")
EOF
gpg_() { gpg --homedir "$home" --batch --yes --quiet --trust-model always "$@"; }
gpg_ --import .dev/pgp-public.asc 2>/dev/null
gpg_ --pinentry-mode loopback --passphrase-file .dev/pgp-passphrase --import .dev/pgp-private.asc 2>/dev/null
gpg_ --encrypt --recipient tkm@localhost --compress-algo zlib -o "$out/in/$name.pgp" "$out/in/$name"
plain_mb=$(du -m "$out/in/$name" | cut -f1)
pgp_mb=$(du -m "$out/in/$name.pgp" | cut -f1)
rm -f "$out/in/$name"
echo "bench: $ROWS rows, ${plain_mb} MB plain, ${pgp_mb} MB encrypted" >&2

now() { date +%s.%N; }
# Limit 1: GnuPG decrypting (and decompressing) the same file.
t0=$(now)
gpg_ --pinentry-mode loopback --passphrase-file .dev/pgp-passphrase --decrypt "$out/in/$name.pgp" >/dev/null
t1=$(now)
gpg_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
# Limit 2: PostgreSQL writing the same rows into a table shaped and indexed like token.
psql "$DB" -X -q -c "CREATE TABLE bench_copy (LIKE token INCLUDING ALL)"
t0=$(now)
psql "$DB" -X -q -c "\\copy bench_copy (htoken, token_key_id, token_ct, token_last4, circuit, par, par_key, source, created_by, updated_by) FROM '$out/in/rows.csv' WITH (FORMAT csv)"
t1=$(now)
copy_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
psql "$DB" -X -q -c "DROP TABLE bench_copy" -c "VACUUM ANALYZE"

# tkm end to end.
if ((PGSS == 1)); then
  pgss_on
  pgss_reset "$DB"
fi
/usr/bin/time -o "$out/time.txt" -f "%e %M" \
  target/release/tkm --config config/dev.toml ingest-token-list "$out/in/$name.pgp" >"$out/ingest.txt" 2>/dev/null
read -r tkm_s rss_kb <"$out/time.txt"
cat "$out/ingest.txt" >&2
accepted=$(psql "$DB" -X -Atc "SELECT accepted FROM upload")
queued=$(psql "$DB" -X -Atc "SELECT count(*) FROM par_lookup WHERE subject = 'token'")
echo "bench: gpg --decrypt ${gpg_s} s, COPY ${copy_s} s, tkm ${tkm_s} s (peak RSS $((rss_kb / 1024)) MB), $accepted accepted, $queued queued for the resolver" >&2

{
  echo "### P7 — token list end to end ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-token-list.sh\` (ROWS=$ROWS): a GnuPG-encrypted (zlib) list of $ROWS rows (${plain_mb} MB plain, ${pgp_mb} MB encrypted; Visa, Mastercard and Amex in turn, ten tokens per PAR) through \`tkm ingest-token-list\` (release build, default settings) on a fresh database; limits in the same run: \`gpg --decrypt\` of the same file, and \`psql \\copy\` of the same rows (hash, sealed token, PAR) into a table shaped and indexed like \`token\`. Ratio = slower limit s / tkm s (goal ≥ 0.5)."
  echo
  echo "| rows | tkm s | rows/s | peak RSS MB | limit: gpg --decrypt s | limit: COPY s | ratio |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  python3 -c "
t, g, c = $tkm_s, $gpg_s, $copy_s
print(f'| {$ROWS:,} | **{t:.1f}** | {$ROWS / t:,.0f} | {$rss_kb / 1024:.0f} | {g:.1f} | {c:.1f} | **{max(g, c) / t:.2f}** |')"
  if ((PGSS == 1)); then
    echo
    echo "PostgreSQL during tkm's run (µs per event = per row):"
    echo
    pgss_report "$DB" "$ROWS"
  fi
} | tee "$out/report.md"
