#!/usr/bin/env bash
# The one release build of tkm: scripts/run.sh and the Dockerfile's build stage run this, so the
# image holds what a developer runs. `--locked` as CI's `cargo test --locked`: Cargo.lock is used
# as committed, never updated. Extra arguments go to cargo (e.g. --quiet). With none it is the
# production build: no cargo feature, so neither the circuit simulator nor the bench tools are
# compiled (scripts/check-production-build.sh proves it); scripts/run.sh adds
# `--features simulator`, the benchmarks `--features simulator,bench --bin tkm-bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo build --release --locked --bin tkm "$@"
