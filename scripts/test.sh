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
scripts/check-docker.sh # Dockerfile, .dockerignore and docker-compose.yml (no engine needed)
echo "test.sh: supply chain (cargo deny check bans licenses sources, deny.toml)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "test.sh: installing cargo-deny 0.20.2 (once; several minutes)"
  cargo install --locked --quiet cargo-deny --version 0.20.2
fi
# cargo-deny reads the metadata of every platform's dependencies (windows-sys too): fetched once.
cargo fetch --locked --quiet
cargo deny --offline --log-level error check bans licenses sources
echo "test.sh: the alert rules (promtool check rules, and their unit tests)"
(cd deploy/prometheus && promtool check rules tkm-alerts.yml >/dev/null && promtool test rules tkm-alerts.test.yml >/dev/null)
if ! command -v clippy-driver >/dev/null 2>&1; then
  echo "test.sh: clippy is missing. Install it with: rustup component add clippy" >&2
  exit 1
fi
# Clippy runs as the compiler of our own crate during the test build (this is what `cargo clippy`
# does, minus its separate check-mode build of every dependency): lints are denied exactly as with
# `cargo clippy --all-targets -- -D warnings`, and a cold CI build compiles the dependencies once.
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# The production build (no cargo feature) first, linted the same way: no simulator or bench code
# in it; then the test build with every feature, so every target (the circuit simulator the
# integration tests run against, tkm-bench the drill uses) is compiled, linted and tested, and
# target/debug/ holds the binaries with the simulator again.
echo "test.sh: the production build has no simulator or bench code"
scripts/check-production-build.sh
echo "test.sh: cargo test --all-features (clippy -D warnings on every target)"
cargo test --locked --all-targets --all-features
cargo test --locked --doc --all-features
echo "test.sh: drill R1 (kill -9 during ingestion, restart, nothing lost or applied twice)"
TKM_BIN_DIR="$PWD/target/debug" scripts/drills/r1-kill9.sh 20000
echo "test.sh: drill R6 (SIGTERM under load: exit 0 within 30 s, updates published, nothing lost)"
TKM_BIN_DIR="$PWD/target/debug" scripts/drills/r6-sigterm.sh 20000
echo "test.sh: all tests passed"
