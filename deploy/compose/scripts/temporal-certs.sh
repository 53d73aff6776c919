#!/bin/sh
# Makes the compose cluster's certificates for Temporal's mTLS, once, into the volume `temporal-tls`
# (never into the repository). Runs as the one-shot service `temporal-certs`; each service mounts
# only its own directory of the volume (a volume subpath):
#   ca/          the two CAs' keys: stay here, mounted by this job only
#   server/      the Temporal server (internode and frontend certificate, CN/SAN `temporal`)
#   treatyflow/  client certificate of treatyflow's setup, workers and API
#   ui/          client certificate of the Temporal UI
#   admin/       client certificate of the namespace job (temporal CLI)
# Every directory has ca.crt (the CA that signed the server: clients verify `temporal` with it),
# tls.crt and tls.key. Idempotent: existing files are kept; TLS_ROTATE=1 makes them all anew (then
# `docker compose up -d --force-recreate`).
set -eu

OUT="${TLS_DIR:-/certs}"
DAYS="${TLS_DAYS:-365}"

command -v openssl >/dev/null 2>&1 || apk add --no-cache openssl >/dev/null

if [ "${TLS_ROTATE:-0}" = "1" ]; then
  rm -rf "${OUT:?}/ca" "${OUT:?}/server" "${OUT:?}/treatyflow" "${OUT:?}/ui" "${OUT:?}/admin"
fi
if [ -s "$OUT/server/tls.crt" ] && [ -s "$OUT/treatyflow/tls.crt" ] && [ -s "$OUT/ui/tls.crt" ] && [ -s "$OUT/admin/tls.crt" ]; then
  echo "temporal-certs: certificates exist"
  exit 0
fi

umask 077
mkdir -p "$OUT/ca" "$OUT/server" "$OUT/treatyflow" "$OUT/ui" "$OUT/admin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

ca() {  # name
  key "$OUT/ca/$1.key"
  openssl req -x509 -new -key "$OUT/ca/$1.key" -sha256 -days 3650 -subj "/CN=treatyflow-compose-$1-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$OUT/ca/$1.crt"
}

leaf() {  # directory, common name, CA, extended key usage, [subjectAltName]
  key "$OUT/$1/tls.key"
  openssl req -new -key "$OUT/$1/tls.key" -subj "/CN=$2" -out "$work/$1.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$4"
    if [ -n "${5:-}" ]; then echo "subjectAltName=$5"; fi
  } > "$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$OUT/ca/$3.crt" -CAkey "$OUT/ca/$3.key" -CAcreateserial \
    -sha256 -days "$DAYS" -extfile "$work/$1.ext" -out "$OUT/$1/tls.crt"
  cp "$OUT/ca/internode.crt" "$OUT/$1/ca.crt"
}

# the internode CA signs the server (which also presents it to its own frontend); the clients' CA
# signs treatyflow, the UI and the namespace job
ca internode
ca clients
leaf server temporal internode "serverAuth,clientAuth" "DNS:temporal,DNS:localhost,IP:127.0.0.1"
cp "$OUT/ca/clients.crt" "$OUT/server/clients-ca.crt"
leaf treatyflow treatyflow clients clientAuth
leaf ui temporal-ui clients clientAuth
leaf admin temporal-namespace clients clientAuth

# each directory readable by the user its image runs as (keys 0400), the CAs' keys by nobody else
chmod 0755 "$OUT/server" "$OUT/treatyflow" "$OUT/ui" "$OUT/admin"
chmod 0444 "$OUT"/server/*.crt "$OUT"/treatyflow/*.crt "$OUT"/ui/*.crt "$OUT"/admin/*.crt
if [ "$(id -u)" = 0 ]; then
  chown -R 1000:1000 "$OUT/server" "$OUT/admin"    # temporalio/server, temporalio/admin-tools
  chown -R 10001:10001 "$OUT/treatyflow"           # the treatyflow image
fi
chmod 0400 "$OUT"/server/tls.key "$OUT"/treatyflow/tls.key "$OUT"/admin/tls.key
chmod 0444 "$OUT"/ui/tls.key                       # temporalio/ui: isolated by its mount only
echo "temporal-certs: certificates made (valid $DAYS days)"
