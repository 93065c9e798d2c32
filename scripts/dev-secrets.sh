#!/usr/bin/env bash
# Creates the development secrets in .dev/ once (git-ignored): the HPAN salt, a vault key and,
# given the path of a built tkm, tkm's PGP key pair (Curve25519, passphrase in .dev/).
# Usage: scripts/dev-secrets.sh [path/to/tkm]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dev="$root/.dev"
mkdir -p "$dev"
chmod 700 "$dev"
umask 077
if [[ ! -s "$dev/salt" ]]; then
  openssl rand -hex 32 >"$dev/salt"
  echo "dev salt written to .dev/salt"
fi
if [[ ! -s "$dev/vault.key" ]]; then
  openssl rand -base64 32 >"$dev/vault.key"
  echo "dev vault key written to .dev/vault.key"
fi
tkm=${1:-}
if [[ -n "$tkm" && ! -s "$dev/pgp-private.asc" ]]; then
  openssl rand -hex 24 >"$dev/pgp-passphrase"
  "$tkm" pgp generate --out-private "$dev/pgp-private.asc" --out-public "$dev/pgp-public.asc" \
    --passphrase-file "$dev/pgp-passphrase" --user-id "tkm dev <tkm@localhost>" --force >/dev/null
  echo "dev PGP key pair written to .dev/pgp-private.asc and .dev/pgp-public.asc"
fi
