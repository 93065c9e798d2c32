#!/usr/bin/env bash
# P5 of spec/quality.md: the enrolled-hashes list of 10 M HPANs + 2 M HTOKENs, zipped and
# checksummed, in ≤ 30 s with memory flat in list size. Loads a benchmark database with COPY at a
# small size, then grows it to the full size; at each size it times `tkm build-lists --kinds
# hpans` (the list's build time as tkm reports it, the process's wall time and peak RSS) and, as
# the limit measured in the same run, the shell pipeline over the same query:
#   psql -c "COPY (…) TO STDOUT" | zip -6 | sha256sum
# Usage: scripts/bench-lists.sh
#   CARDS=10000000 TOKENS=2000000 SMALL_CARDS=1000000 SMALL_TOKENS=200000   sizes
#   KEEP=1   keep the database (tkm_bench_lists) afterwards
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARDS=${CARDS:-10000000}
TOKENS=${TOKENS:-2000000}
SMALL_CARDS=${SMALL_CARDS:-1000000}
SMALL_TOKENS=${SMALL_TOKENS:-200000}
KEEP=${KEEP:-0}
ADMIN_DB=${ADMIN_DB:-postgres://postgres@127.0.0.1:5432/postgres}
DB_NAME=tkm_bench_lists
DB=${ADMIN_DB%/*}/$DB_NAME
out=target/bench/lists
mkdir -p "$out"
source scripts/lib-bench-profile.sh

for tool in zip unzip sha256sum /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-lists: $tool is needed (apt-get install zip unzip time)" >&2; exit 1; }
done
need_gib=$(( CARDS / 1000000 + 4 ))
free_gib=$(df --output=avail -BG / | tail -1 | tr -dc 0-9)
if (( free_gib < need_gib )); then
  echo "bench-lists: about ${need_gib} GiB of disk needed, ${free_gib} GiB free; lower CARDS" >&2
  exit 1
fi

scripts/services.sh
scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
scripts/dev-secrets.sh target/release/tkm >/dev/null
cleanup() { ((KEEP == 1)) || psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"; rm -rf "$out/storage"; }
trap cleanup EXIT
psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -qc "CREATE DATABASE $DB_NAME"
export TKM__DATABASE__URL=$DB TKM__STORAGE__DIR=$ROOT/$out/storage
target/release/tkm --config config/dev.toml migrate >/dev/null

# load FROM TO_CARDS TOKENS_FROM TOKENS_TO: cards FROM+1..TO_CARDS (one consenting citizen per 4,
# a live link and a PAR each) and tokens of the PARs of cards TOKENS_FROM+1..TOKENS_TO.
load() {
  local from=$1 to=$2 tfrom=$3 tto=$4 t0=$SECONDS
  printf 'bench: cards %d..%d, tokens %d..%d…' "$((from + 1))" "$to" "$((tfrom + 1))" "$tto" >&2
  copy_rows "$DB" "consent_citizen (tax_code, version, state, created_by, updated_by)" "
    SELECT 'PL' || lpad(i::text, 14, '0'), 1, '{\"services\": {\"BPD\": \"Allow\", \"FA\": \"Allow\"}}', 'bench', 'bench'
    FROM generate_series($from / 4 + 1, ($to + 3) / 4) AS i"
  copy_rows "$DB" "card (id, hpan, circuit, par, par_key, par_source, active, created_by, updated_by)" "
    SELECT i, encode(sha256(('pl-card-' || i)::bytea), 'hex'), 'VISA', 'V001PL' || lpad(i::text, 23, '0'),
           'V001PL' || lpad(i::text, 23, '0'), 'issuer', true, 'bench', 'bench'
    FROM generate_series($from + 1, $to) AS i"
  copy_rows "$DB" "card_link (card_id, tax_code, live, opened_at, changed_at, published, created_by, updated_by)" "
    SELECT i, 'PL' || lpad(((i - 1) / 4 + 1)::text, 14, '0'), true, now(), now(), true, 'bench', 'bench'
    FROM generate_series($from + 1, $to) AS i"
  copy_rows "$DB" "token (htoken, circuit, par, par_key, source, created_by, updated_by)" "
    SELECT encode(sha256(('pl-token-' || i)::bytea), 'hex'), 'VISA', 'V001PL' || lpad(i::text, 23, '0'),
           'V001PL' || lpad(i::text, 23, '0'), 'circuit', 'bench', 'bench'
    FROM generate_series($tfrom + 1, $tto) AS i"
  psql "$DB" -X -q -c "VACUUM ANALYZE"
  echo " $((SECONDS - t0)) s" >&2
}

sql=$(target/release/tkm-bench list-sql hpans)
rows=()
# measure LABEL [keep]: a build (from an empty storage.dir, or with `keep` the previous
# generation still there, so the delta from it is written in the same pass).
measure() {
  local label=$1
  [[ ${2:-} == keep ]] || rm -rf "$out/storage"
  /usr/bin/time -o "$out/time.txt" -f "%e %M" \
    target/release/tkm --config config/dev.toml build-lists --kinds hpans >"$out/build.txt" 2>/dev/null
  local wall rss_kb line build_s lines parts zip_bytes
  read -r wall rss_kb <"$out/time.txt"
  line=$(grep '^hpans:' "$out/build.txt")
  build_s=$(sed -E 's/.* ([0-9.]+) s$/\1/' <<<"$line")
  lines=$(sed -E 's/.*, ([0-9]+) lines in.*/\1/' <<<"$line")
  parts=$(sed -E 's/.* in ([0-9]+) part.*/\1/' <<<"$line")
  zip_bytes=$(du -cb "$out"/storage/lists/hpans/*/hashedPans_[0-9]*.zip | tail -1 | cut -f1)
  # The limit: the same query through psql, Info-ZIP and sha256sum (one file, no parts).
  local t0 t1
  t0=$(date +%s.%N)
  psql "$DB" -X -q -c "$sql" | zip -q -6 - - | sha256sum >/dev/null
  t1=$(date +%s.%N)
  local pipe_s
  pipe_s=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  rows+=("$(python3 -c "
b, p, w, rss = max($build_s, 0.05), $pipe_s, $wall, $rss_kb / 1024
print(f'| $label | {$lines:,} | $parts | {$zip_bytes / 1e6:.0f} MB | **{b:.1f}** | {w:.1f} | {rss:.0f} | {p:.1f} | **{p / b:.2f}** |')")")
  echo "bench: $label: tkm ${build_s} s (wall ${wall} s, peak RSS $((rss_kb / 1024)) MB), pipeline ${pipe_s} s" >&2
}

load 0 "$SMALL_CARDS" 0 "$SMALL_TOKENS"
measure "$SMALL_CARDS cards + $SMALL_TOKENS tokens"
load "$SMALL_CARDS" "$CARDS" "$SMALL_TOKENS" "$TOKENS"
measure "$CARDS cards + $TOKENS tokens"
psql "$DB" -X -q -c "UPDATE card SET active = false WHERE id % 1000 = 0"
measure "the same, a day later (0.1 % of cards gone), with the delta from the day before" keep

{
  echo "### P5 — list build ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "Command: \`scripts/bench-lists.sh\` (CARDS=$CARDS TOKENS=$TOKENS SMALL_CARDS=$SMALL_CARDS SMALL_TOKENS=$SMALL_TOKENS). tkm release build, \`tkm build-lists --kinds hpans\` with the default settings (parts of 1 000 000 lines, deflate level 6); build s = the list's build as tkm reports it (query, parts, checksums, deltas, publication), wall = the whole process. Limit: \`psql -c \"\$(tkm-bench list-sql hpans)\" | zip -q -6 - - | sha256sum\` on the same database right after; ratio = limit s / tkm build s (≥ 1.0: tkm at least as fast)."
  echo
  echo "| database | lines | parts | zip | tkm build s | tkm wall s | tkm peak RSS MB | limit: psql \\| zip \\| sha256sum s | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/report.md"
