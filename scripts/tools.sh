#!/usr/bin/env bash
# Makes sure the command-line tools tkm's scripts and tests use are installed: openssl, psql,
# curl, gpg (GnuPG interoperability tests), promtool (the alert rules in deploy/). Installs what is missing with apt-get (as root or
# through sudo), else says what to install. Idempotent.
set -euo pipefail
declare -A package=([openssl]=openssl [psql]=postgresql-client [curl]=curl [gpg]=gnupg [promtool]=prometheus)
missing=()
for tool in openssl psql curl gpg promtool; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
done
((${#missing[@]} == 0)) && exit 0
if command -v apt-get >/dev/null 2>&1 && { [[ $EUID -eq 0 ]] || command -v sudo >/dev/null 2>&1; }; then
  run=(env DEBIAN_FRONTEND=noninteractive); [[ $EUID -eq 0 ]] || run=(sudo "${run[@]}")
  echo "tools: installing ${missing[*]} with apt-get" >&2
  "${run[@]}" apt-get update -q >/dev/null && "${run[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "tools: please install ${missing[*]} and run again" >&2
  exit 1
fi
