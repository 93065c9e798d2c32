# Sourced by benchmarks: CPU seconds per process over a run (from /proc, whatever else the machine
# does), PostgreSQL's statements (pg_stat_statements, switched on for the benchmark only) and its
# table scans. Needs ADMIN_DB (lib-tkm-instance.sh).

# cpu_ticks PID…: utime + stime of the given processes, in clock ticks.
cpu_ticks() {
  local total=0 pid f
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    # Fields 14 and 15 after the parenthesised command name.
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

pids_of() { pgrep -x "$1" | tr '\n' ' '; }

# cpu_snapshot: "tkm postgres rabbitmq generator" ticks now (TKM_PID, GEN_PID set by the caller).
cpu_snapshot() {
  echo "$(cpu_ticks "${TKM_PID:-0}") $(cpu_ticks $(pids_of postgres)) $(cpu_ticks $(pids_of beam.smp)) $(cpu_ticks "${GEN_PID:-0}")"
}

# pgss_on: loads pg_stat_statements into the local PostgreSQL (a restart) if it is not loaded;
# remembers to undo it (pgss_off) so the services are left as found.
PGSS_LOADED_HERE=0
pgss_on() {
  if ! psql "$ADMIN_DB" -Atqc "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
    psql "$ADMIN_DB" -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    pg_restart
    PGSS_LOADED_HERE=1
  fi
}

pgss_off() {
  if ((PGSS_LOADED_HERE == 1)); then
    psql "$ADMIN_DB" -qc "ALTER SYSTEM RESET shared_preload_libraries"
    pg_restart
    PGSS_LOADED_HERE=0
  fi
}

pg_restart() {
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if [[ $EUID -eq 0 ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  else
    sudo pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  fi
  local deadline=$((SECONDS + 60))
  until psql "$ADMIN_DB" -Atqc "SELECT 1" >/dev/null 2>&1; do
    ((SECONDS > deadline)) && { echo "PostgreSQL did not come back" >&2; return 1; }
    sleep 0.5
  done
}

# pgss_reset DB: statistics from now on (the extension is created in DB).
pgss_reset() {
  psql "$1" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -qc "SELECT pg_stat_statements_reset()" -qc "SELECT pg_stat_reset()" >/dev/null
}

# pgss_report DB EVENTS: the statements of DB by total time, as a Markdown table with the time
# per event, and the tables' sequential and index scans.
pgss_report() {
  local db=$1 n=$2
  psql "$db" -Atq -F '|' -c "
    SELECT calls, round(total_exec_time::numeric, 1), round((total_exec_time * 1000 / $n)::numeric, 1),
           round(mean_exec_time::numeric, 3), rows,
           regexp_replace(left(query, 110), '\s+', ' ', 'g')
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC LIMIT 15" |
    awk -F'|' 'BEGIN { print "| calls | total ms | µs per event | mean ms | rows | statement |"; print "|---:|---:|---:|---:|---:|---|" }
               { gsub(/\|/, "\\|", $6); printf "| %s | %s | %s | %s | %s | `%s` |\n", $1, $2, $3, $4, $5, $6 }'
  echo
  psql "$db" -Atq -F '|' -c "
    SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_tup_ins, n_tup_upd, n_tup_del, n_dead_tup
    FROM pg_stat_user_tables WHERE relname IN ('card','token','card_link','card_link_interval','outbox','par_lookup','inbound_message','consent_citizen')
    ORDER BY relname" |
    awk -F'|' 'BEGIN { print "| table | seq scans | rows read by them | index scans | inserted | updated | deleted | dead now |"; print "|---|---:|---:|---:|---:|---:|---:|---:|" }
               { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
}

# prefill DB N: N cards already enrolled (a consenting citizen per 4 cards, a PAR and a verified
# token each), loaded in bulk before the run, so the benchmark sees a database of that size.
prefill() {
  local db=$1 n=$2
  (( n > 0 )) || return 0
  echo "bench: prefilling $n cards" >&2
  psql "$db" -q <<SQL
SET synchronous_commit = off;
INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by)
  SELECT 'PF' || lpad(i::text, 14, '0'), 1, '{"services": {"BPD": "Allow", "FA": "Allow"}}', 'prefill', 'prefill'
  FROM generate_series(1, ($n + 3) / 4) AS i;
INSERT INTO card (hpan, pan_key_id, pan_ct, pan_last4, circuit, par, par_key, par_source, active, created_by, updated_by)
  SELECT encode(sha256(('pf-card-' || i)::bytea), 'hex'), 'dev1', sha256(('ct-' || i)::bytea), lpad((i % 10000)::text, 4, '0'),
         'VISA', 'V001PF' || lpad(i::text, 23, '0'), 'V001PF' || lpad(i::text, 23, '0'), 'issuer', true, 'prefill', 'prefill'
  FROM generate_series(1, $n) AS i;
INSERT INTO card_link (card_id, tax_code, live, opened_at, changed_at, published, created_by, updated_by)
  SELECT id, 'PF' || lpad(((id - 1) / 4 + 1)::text, 14, '0'), true, now(), now(), true, 'prefill', 'prefill'
  FROM card WHERE created_by = 'prefill';
INSERT INTO card_link_interval (card_id, tax_code, opened_at, created_by, updated_by)
  SELECT card_id, tax_code, opened_at, 'prefill', 'prefill' FROM card_link WHERE created_by = 'prefill';
INSERT INTO token (htoken, token_key_id, token_ct, circuit, par, par_key, source, created_by, updated_by)
  SELECT encode(sha256(('pf-token-' || i)::bytea), 'hex'), 'dev1', sha256(('tct-' || i)::bytea), 'VISA',
         'V001PF' || lpad(i::text, 23, '0'), 'V001PF' || lpad(i::text, 23, '0'), 'circuit', 'prefill', 'prefill'
  FROM generate_series(1, $n) AS i;
ANALYZE;
SQL
}
