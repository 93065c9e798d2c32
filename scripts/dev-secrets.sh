#!/usr/bin/env bash
# Creates the development secrets in .dev/ once (git-ignored): the HPAN salt and a vault key.
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
