#!/usr/bin/env bash
# The README's second command: sets up the services, then runs the whole test suite (formatting,
# lints, unit and integration tests against real PostgreSQL, RabbitMQ and mutual TLS).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/tools.sh
scripts/services.sh
certs/gen-dev-certs.sh >/dev/null
scripts/dev-secrets.sh

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is missing. Install Rust with rustup (https://rustup.rs) and run again." >&2
  exit 1
fi

# Databases left by earlier runs (each integration test makes its own).
admin=${TKM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for db in $(psql "$admin" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'tkm\_test\_%'"); do
  psql "$admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "test.sh: cargo test"
cargo test --locked
echo "test.sh: all tests passed"
