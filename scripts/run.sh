#!/usr/bin/env bash
# The README's first command: sets up everything a developer needs and starts tkm on the local
# defaults (config/dev.toml): API on https://127.0.0.1:8443 (mTLS), ops on http://127.0.0.1:9090.
# Idempotent: run it again at will. Stop the server with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/tools.sh
scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/dev-secrets.sh

if ! command -v cargo >/dev/null 2>&1; then
  echo "run.sh: cargo is missing. Install Rust with rustup (https://rustup.rs) and run again." >&2
  exit 1
fi

if [[ -z "${TKM__DATABASE__URL:-}" ]]; then
  if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'tkm'" | grep -q 1; then
    psql "postgres://postgres@127.0.0.1:5432/postgres" -qc 'CREATE DATABASE tkm'
    echo "run.sh: created database tkm"
  fi
fi

echo "run.sh: building tkm (release, with the circuit simulator config/dev.toml runs)…"
scripts/build-release.sh --quiet --features simulator
scripts/dev-secrets.sh target/release/tkm

TKM__DEV=true target/release/tkm --config config/dev.toml serve &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
deadline=$((SECONDS + 60))
until curl -fsS http://127.0.0.1:9090/health/ready >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || true
    echo "run.sh: tkm stopped during start-up; see the messages above." >&2
    exit 1
  fi
  if ((SECONDS > deadline)); then
    echo "run.sh: tkm is not ready after 60 s; see http://127.0.0.1:9090/health/ready" >&2
    break
  fi
  sleep 0.5
done

tc=RSSMRA85T10A562S
tls() { echo "curl -sS --cacert certs/dev/ca.crt --cert certs/dev/$1.crt --key certs/dev/$1.key"; }
cat <<TXT

tkm is up: API https://127.0.0.1:8443 (mutual TLS), ops http://127.0.0.1:9090
Try it (from $(pwd)):

  # a citizen consents to every service (role io)
  $(tls io) -H 'Tax-Code: $tc' -H 'Client-Id: demo' \\
       -H 'Content-Type: application/json' -d '{"consent":"Allow"}' https://127.0.0.1:8443/consent
  # withdraws FA only, then reads the consent back
  $(tls io) -H 'Tax-Code: $tc' -H 'Client-Id: demo' \\
       -H 'Content-Type: application/json' -d '{"consent":"Deny","services":["FA"]}' https://127.0.0.1:8443/consent
  $(tls io) -H 'Tax-Code: $tc' https://127.0.0.1:8443/consent
  # status of BPD now, and the full history (role platform)
  $(tls platform) -H 'Tax-Code: $tc' 'https://127.0.0.1:8443/consent/status?service=BPD'
  $(tls platform) -H 'Tax-Code: $tc' https://127.0.0.1:8443/consent/history
  # a card of that citizen arrives from its issuer: a PGP-encrypted card event over RabbitMQ
  echo '{"taxCode":"$tc","pan":"5555555555554444","circuit":"MASTERCARD","timestamp":"2026-12-01 10:00:00:0000"}' \\
    | target/release/tkm --config config/dev.toml publish-card-event
  # an admin refreshes the token BIN ranges and runs a PAR cycle against the circuits (here the
  # built-in simulator on https://127.0.0.1:8543), then follows the jobs and the status
  $(tls admin) -X POST https://127.0.0.1:8443/admin/bin-ranges/refresh
  $(tls admin) -X POST https://127.0.0.1:8443/admin/par/refresh
  $(tls admin) https://127.0.0.1:8443/admin/jobs
  $(tls admin) https://127.0.0.1:8443/admin/status
  # the card now has its PAR, and a card update went to tkm-write-update-token (role platform)
  $(tls platform) -H "hpan: \$(printf '%s%s' 5555555555554444 "\$(cat .dev/salt)" | sha256sum | cut -d' ' -f1)" \\
       https://127.0.0.1:8443/cards
  # health, metrics, API description
  curl -sS http://127.0.0.1:9090/health/ready
  curl -sS http://127.0.0.1:9090/metrics | grep tkm_
  curl -sS http://127.0.0.1:9090/openapi.json

Ctrl-C stops tkm.
TXT
wait "$pid"
