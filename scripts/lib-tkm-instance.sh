# Sourced by benchmarks and drills: start and stop a tkm on its own database, ports and queue
# names, with a given PGP key. Needs ROOT, NAME (suffix), KEY (armored secret), PUB (public).
# TKM_BIN_DIR picks the binaries (default: the release build; test.sh passes the debug build).
# INSTANCE_EXTRA_ENV (array) adds settings; the circuit simulator listens on INSTANCE_SIM.
INSTANCE_EXTRA_ENV=("${INSTANCE_EXTRA_ENV[@]}")
INSTANCE_API=${INSTANCE_API:-18443}
INSTANCE_OPS=${INSTANCE_OPS:-19090}
INSTANCE_SIM=${INSTANCE_SIM:-18543}
ADMIN_DB=${TKM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BIN_DIR=${TKM_BIN_DIR:-$ROOT/target/release}
# The benchmark keys have no passphrase; `tkm migrate` reads the configuration before any start.
mkdir -p "$ROOT/target/bench"
: >"$ROOT/target/bench/empty-passphrase"

instance_env() {
  local db="tkm_${NAME//[^a-z0-9_]/_}"
  echo "TKM__DATABASE__URL=${ADMIN_DB%/*}/$db"
  echo "TKM__SERVER__BIND=127.0.0.1:$INSTANCE_API"
  echo "TKM__SERVER__OPS_BIND=127.0.0.1:$INSTANCE_OPS"
  echo "TKM__PGP__PRIVATE_KEY_FILE=$KEY"
  echo "TKM__PGP__PUBLIC_KEY_FILE=$PUB"
  echo "TKM__PGP__PASSPHRASE_FILE=$ROOT/target/bench/empty-passphrase"
  echo "TKM__TELEMETRY__JSON=true"
  # A benchmark measures its own load: no list build of a prefilled database at start-up.
  echo "TKM__LISTS__BUILD_ON_START=false"
  for q in card_events_queue:tkm-read-token-par-pan card_deletions_queue:tkm-delete-card \
           transactions_queue:tkm-transactions out_exchange:tkm.out \
           card_updates_queue:tkm-write-update-token outcomes_queue:tkm-transaction-outcomes \
           dead_letter_exchange:tkm.dlx dead_letter_queue:tkm-dlq dead_letter_audit_queue:tkm-dlq-audit; do
    local key=${q%%:*} value=${q#*:}
    echo "TKM__RABBITMQ__${key^^}=$value.$NAME"
  done
  echo "TKM__RABBITMQ__QUEUE_EXPIRES_MS=3600000"
  echo "TKM__CIRCUITS__SIMULATOR__BIND=127.0.0.1:$INSTANCE_SIM"
  echo "TKM__CIRCUITS__SIMULATOR__KEYS_DIR=$ROOT/target/bench/simulator-keys"
  # Extra settings of the caller (e.g. circuit rates), one NAME=value per element.
  for e in "${INSTANCE_EXTRA_ENV[@]}"; do echo "$e"; done
}

instance_db_url() { instance_env | sed -n 's/^TKM__DATABASE__URL=//p'; }

instance_reset_db() {
  local db
  db=$(instance_db_url)
  db=${db##*/}
  psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db"
}

# instance_start LOGFILE: starts tkm in the background (INSTANCE_PID) and waits until ready with
# the broker up.
instance_start() {
  env $(instance_env) "$BIN_DIR/tkm" --config "$ROOT/config/dev.toml" serve >>"$1" 2>&1 &
  INSTANCE_PID=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$INSTANCE_OPS/health/ready" 2>/dev/null | grep -q '"broker":"up"'; do
    if ! kill -0 "$INSTANCE_PID" 2>/dev/null; then echo "tkm died; see $1" >&2; return 1; fi
    if ((SECONDS > deadline)); then echo "tkm not ready after 60 s; see $1" >&2; return 1; fi
    sleep 0.3
  done
}

instance_stop() {
  [[ -n "${INSTANCE_PID:-}" ]] || return 0
  kill -TERM "$INSTANCE_PID" 2>/dev/null || true
  wait "$INSTANCE_PID" 2>/dev/null || true
  INSTANCE_PID=
}
