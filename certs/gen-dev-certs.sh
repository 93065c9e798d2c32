#!/usr/bin/env bash
# Generates the development PKI in certs/dev/ (idempotent; git-ignored):
#   ca.{crt,key}                 dev CA that signs the server and client certificates
#   server.{crt,key}             server certificate for localhost and 127.0.0.1
#   <role>.{crt,key,pem}         one client certificate per role (io issuer acquirer platform admin),
#                                and acquirer2 (a second acquirer, ABI 88888);
#                                .pem = certificate + key, for tools such as `ab -E` and curl --cert
#   unmapped.{crt,key}           signed by the dev CA but mapped to no client (→ 403)
#   circuit-client.{crt,key}     tkm's client certificate towards the circuit simulator (Visa mTLS)
#   rogue-ca.{crt,key}, rogue.{crt,key}
#                                another CA with the same name as the dev CA, and a client
#                                certificate it signed with the io subject (→ no TLS session)
# Usage: certs/gen-dev-certs.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/dev"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

roles=(io issuer acquirer acquirer2 platform admin)
want=(ca.crt ca.key server.crt server.key unmapped.crt unmapped.key circuit-client.crt circuit-client.key rogue-ca.crt rogue.crt rogue.key)
for r in "${roles[@]}"; do want+=("$r.crt" "$r.key" "$r.pem"); done
if [[ "${1:-}" != "--force" ]]; then
  missing=0
  for f in "${want[@]}"; do [[ -s "$out/$f" ]] || missing=1; done
  if [[ $missing == 0 ]]; then
    echo "dev certificates already present in $out (use --force to remake them)"
    exit 0
  fi
fi

command -v openssl >/dev/null || { echo "openssl is required (apt-get install openssl)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=825
umask 077

ca() { # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -days "$days" -subj "$2" -keyout "$tmp/$1.key" -out "$tmp/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
}
leaf() { # name subject ca usage [san]
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "$2" -keyout "$tmp/$1.key" -out "$tmp/$1.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$4"
    [[ -n "${5:-}" ]] && echo "subjectAltName=$5"
  } >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$3.crt" -CAkey "$tmp/$3.key" -CAcreateserial \
    -days "$days" -sha256 -extfile "$tmp/$1.ext" -out "$tmp/$1.crt" 2>/dev/null
  cat "$tmp/$1.crt" "$tmp/$1.key" >"$tmp/$1.pem"
}

ca ca "/O=tkm dev/CN=tkm dev CA"
leaf server "/O=tkm dev/CN=localhost" ca serverAuth "DNS:localhost,IP:127.0.0.1"
for r in "${roles[@]}"; do leaf "$r" "/O=tkm dev/CN=tkm-dev-$r" ca clientAuth; done
leaf unmapped "/O=tkm dev/CN=tkm-dev-unmapped" ca clientAuth
leaf circuit-client "/O=tkm dev/CN=tkm-dev-circuit-client" ca clientAuth
ca rogue-ca "/O=tkm dev/CN=tkm dev CA"
leaf rogue "/O=tkm dev/CN=tkm-dev-io" rogue-ca clientAuth

rm -f "$tmp"/*.csr "$tmp"/*.ext "$tmp"/*.srl
chmod 644 "$tmp"/*.crt
mv -f "$tmp"/* "$out"/
echo "dev certificates written to $out"
