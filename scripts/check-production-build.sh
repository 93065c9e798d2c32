#!/usr/bin/env bash
# Proves that the production build of tkm compiles neither the circuit simulator nor the bench
# tools (cargo features `simulator` and `bench`, both off by default) and refuses simulator mode
# by name. scripts/test.sh runs it before its all-features test build:
#   - builds tkm with no feature: `cargo build --locked --bin tkm` (debug profile, whose
#     dependencies the test build shares; under test.sh clippy is the compiler, so the
#     no-feature build is linted too), or with `--release` scripts/build-release.sh with no
#     argument, the build of the Docker image;
#   - its symbol table holds tkm's own functions but none of tkm::circuits::simulator or
#     tkm::bench, and its data not the simulator's banner;
#   - `tkm simulate-circuits` is not one of its commands;
#   - `tkm serve` on config/dev.toml (circuits.mode = "simulator") stops at once, naming
#     `circuits.mode` and the feature.
# Exits non-zero naming every check that failed.
# Usage: scripts/check-production-build.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
if [[ ${1:-} == --release ]]; then
  scripts/build-release.sh --quiet
  bin=$target/release/tkm
else
  cargo build --locked --quiet --bin tkm
  bin=$target/debug/tkm
fi

errors=()
fail() { errors+=("$*"); }

if ! command -v nm >/dev/null 2>&1; then
  echo "check-production-build: nm is missing (package binutils)" >&2
  exit 1
fi
symbols=$(nm -C "$bin" 2>/dev/null || true)
if ! grep -q 'tkm::startup::' <<<"$symbols"; then
  fail "$bin has no readable symbols of tkm (stripped?): cannot tell what it contains"
else
  leaked=$(grep -oE 'tkm::(circuits::simulator|bench)::[A-Za-z0-9_]+' <<<"$symbols" | sort -u | head -n 5 || true)
  [[ -z $leaked ]] || fail "$bin contains development code: $(tr '\n' ' ' <<<"$leaked")"
fi
if grep -qaF 'circuit simulator listening on' "$bin"; then
  fail "$bin contains the banner of \`tkm simulate-circuits\`"
fi

if out=$("$bin" simulate-circuits --help 2>&1); then
  fail "\`tkm simulate-circuits\` is a command of the production build"
elif ! grep -q "unrecognized subcommand 'simulate-circuits'" <<<"$out"; then
  fail "\`tkm simulate-circuits\` fails, but not as an unknown command: $out"
fi

# Validation comes first at start-up; should it pass, nothing is reachable on these addresses.
if out=$(env -u TKM_CONFIG TKM__DATABASE__URL=postgres://nobody@127.0.0.1:1/none \
    TKM__RABBITMQ__URL=amqp://nobody@127.0.0.1:1/%2f TKM__SERVER__BIND=127.0.0.1:0 \
    TKM__SERVER__OPS_BIND=127.0.0.1:0 timeout 30 "$bin" --config config/dev.toml serve 2>&1); then
  fail "\`tkm serve\` in simulator mode started and ended normally"
elif ! grep -q 'circuits.mode' <<<"$out" || ! grep -q 'feature' <<<"$out"; then
  fail "\`tkm serve\` in simulator mode must refuse naming circuits.mode and the cargo feature, said: $out"
fi

if ((${#errors[@]} > 0)); then
  printf 'check-production-build: FAILED: %s\n' "${errors[@]}" >&2
  exit 1
fi
echo "check-production-build: ok ($bin: no simulator or bench code, simulator mode refused by name)"
