#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on 127.0.0.1 (5432, 5672): starts them when installed,
# installs them with apt-get when missing (as root or through sudo), else says what is missing.
# Idempotent. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail

log() { echo "services: $*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1; fi
}
as_postgres() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"
  else sudo -u postgres "$@"; fi
}
wait_port() { # port seconds what
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    if ((SECONDS > deadline)); then log "$3 did not open port $1 within $2 s"; return 1; fi
    sleep 0.5
  done
}
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "cannot install $* here: no apt-get. Install it with your package manager and run again."
    exit 1
  fi
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || {
    log "apt-get update failed (are you root or a sudoer?); install $* yourself"; exit 1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || {
    log "apt-get install $* failed; install it yourself and run again"; exit 1; }
}

pg_can_connect() {
  psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'SELECT 1' >/dev/null 2>&1
}

ensure_postgres() {
  local installed_now=0
  if ! port_open 5432; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
      apt_install postgresql postgresql-client
      installed_now=1
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    if [[ -z "$version" ]]; then
      version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
      as_root pg_createcluster "$version" main >/dev/null
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 60 PostgreSQL
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  if ! pg_can_connect; then
    # A fresh Debian cluster asks for a password over TCP; tkm's local default is the trusted
    # local superuser (spec: operations.md), so allow exactly that on loopback.
    local hba
    hba=$(as_postgres psql -Atqc 'SHOW hba_file' 2>/dev/null || true)
    if [[ -n "$hba" && ( $installed_now == 1 || -n "${TKM_TRUST_LOCAL_PG:-}" ) ]]; then
      log "allowing the postgres user on 127.0.0.1 without password (pg_hba: $hba)"
      as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
      as_postgres psql -Atqc 'SELECT pg_reload_conf()' >/dev/null
    fi
    if ! pg_can_connect; then
      log "PostgreSQL runs but postgres@127.0.0.1 cannot log in without a password."
      log "Either set TKM__DATABASE__URL (and TKM_TEST_DATABASE_URL for tests) with credentials,"
      log "or rerun with TKM_TRUST_LOCAL_PG=1 to trust the local postgres user on loopback."
      exit 1
    fi
  fi
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    apt_install rabbitmq-server
  fi
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 120 RabbitMQ
  as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
}

# Only the database of the local default URL is managed here; a custom URL is the user's.
if [[ -z "${TKM__DATABASE__URL:-}" ]]; then ensure_postgres; fi
ensure_rabbitmq
log "PostgreSQL and RabbitMQ are up"
