# shellcheck shell=bash
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
  # shellcheck disable=SC2046 # one NAME=value per word (no value holds a space)
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

# Shared by the drills R4, R5, R7 and the soak (r1 and r6 do the same inline).
INSTANCE_AMQP=${INSTANCE_AMQP:-amqp://guest:guest@127.0.0.1:5672}

# drill_setup: the binaries (a release build through cargo unless TKM_BIN_DIR names a build with
# the simulator and tkm-bench), the dev PKI and secrets (once), the drill's own PGP key pair.
drill_setup() {
  if [[ -z "${TKM_BIN_DIR:-}" ]]; then
    # A target/release/tkm left by the production build has no simulator: always through cargo.
    scripts/build-release.sh --quiet --features simulator,bench --bin tkm-bench
  fi
  certs/gen-dev-certs.sh >/dev/null
  scripts/dev-secrets.sh >/dev/null
  "$BIN_DIR/tkm" pgp generate --out-private "$KEY" --out-public "$PUB" --force >/dev/null
}

# The instance's queues (their names carry NAME).
instance_queues() { instance_env | sed -n 's/^TKM__RABBITMQ__[A-Z_]*_QUEUE=//p'; }

# instance_drop: after instance_stop, drops the instance's database and deletes its queues (its
# two exchanges stay: empty, a few bytes). KEEP=1 keeps both for a post-mortem.
instance_drop() {
  [[ "${KEEP:-0}" == 1 ]] && return 0
  local db q
  db=$(instance_db_url)
  psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS ${db##*/} WITH (FORCE)" >/dev/null 2>&1 || true
  if command -v amqp-delete-queue >/dev/null 2>&1; then
    for q in $(instance_queues); do amqp-delete-queue -u "$INSTANCE_AMQP" -q "$q" >/dev/null 2>&1 || true; done
  fi
}

# instance_sql QUERY: one value (or rows, | separated) from the instance's database.
instance_sql() { psql "$(instance_db_url)" -XAtqc "$1"; }

# instance_api ROLE CURL-ARGS… PATH: curl over mTLS as the dev client certificate of ROLE (certs/dev);
# prints the body then the status on a last line of its own.
instance_api() {
  local role=$1 path=${*: -1}
  curl --silent --show-error --cacert certs/dev/ca.crt --cert "certs/dev/$role.pem" \
    --write-out '\n%{http_code}\n' "${@:2:$#-2}" "https://localhost:$INSTANCE_API$path"
}

# instance_metric PREFIX: the sum of the ops listener's metric lines that start with PREFIX (a
# literal, e.g. 'tkm_db_pool_connections{state="size"}'); 0 when there is none.
instance_metric() {
  curl --silent "http://127.0.0.1:$INSTANCE_OPS/metrics" | awk -v p="$1" 'index($0, p) == 1 {s += $NF} END {print s + 0}'
}

# instance_call ROLE CURL-ARGS… PATH: instance_api into API_CODE and API_BODY (no subshell).
instance_call() {
  local r
  r=$(instance_api "$@")
  # shellcheck disable=SC2034 # read by the callers
  API_CODE=${r##*$'\n'} API_BODY=${r%$'\n'*}
}

# jsonq EXPR: evaluates a Python expression over the JSON on stdin, bound to j.
jsonq() { python3 -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# instance_job_end ID [SECONDS]: waits for an admin job to end; prints its final state (or the
# last answer after SECONDS, default 300).
instance_job_end() {
  local deadline=$((SECONDS + ${2:-300})) state
  while :; do
    instance_call admin "/admin/jobs/$1"
    state=$(jsonq 'j.get("state")' <<<"$API_BODY" 2>/dev/null || echo "?")
    if [[ $state == SUCCEEDED || $state == FAILED ]] || ((SECONDS > deadline)); then
      echo "$state"
      return 0
    fi
    sleep 0.5
  done
}

# updates_published QUEUE COUNT SECONDS: drains up to COUNT card update messages from QUEUE (for
# at most SECONDS) and prints the distinct cards they name and the cards named in all.
updates_published() {
  { timeout "$3" amqp-consume -u "$INSTANCE_AMQP" -q "$1" -c "$2" -p 1000 -- cat || true; } | python3 -c '
import json, sys
text, decoder, at, hpans = sys.stdin.read(), json.JSONDecoder(), 0, []
while at < len(text):
    if text[at].isspace():
        at += 1
        continue
    body, at = decoder.raw_decode(text, at)
    hpans += [c["hpan"] for c in body["cards"]]
print(len(set(hpans)), len(hpans))'
}
