#!/usr/bin/env bash
# Prints "CERT KEY KEYRING" for signing RAUC bundles. With $PECBOX_RAUC_KEY set (a file or
# a PKCS#11 URL), $PECBOX_RAUC_CERT and $PECBOX_RAUC_KEYRING are used as given (a real
# key, docs/updates.md). Otherwise a DEVELOPMENT CA + signing key, created on first use
# in image/keys/ (gitignored: never commit it, never ship it).
set -euo pipefail
if [ -n "${PECBOX_RAUC_KEY:-}" ]; then
  echo "${PECBOX_RAUC_CERT:?PECBOX_RAUC_CERT is required with PECBOX_RAUC_KEY}" \
    "$PECBOX_RAUC_KEY" "${PECBOX_RAUC_KEYRING:?PECBOX_RAUC_KEYRING is required with PECBOX_RAUC_KEY}"
  exit 0
fi
keys=$(cd "$(dirname "$0")/.." && pwd)/keys
cert=$keys/dev-signing.pem key=$keys/dev-signing.key keyring=$keys/dev-ca.pem
if [ ! -f "$cert" ] || [ ! -f "$key" ] || [ ! -f "$keyring" ]; then
  echo "creating a DEVELOPMENT update CA and signing key in $keys (never use them in production)" >&2
  mkdir -p "$keys"
  chmod 700 "$keys"
  ext=$(mktemp)
  trap 'rm -f "$ext"' EXIT
  printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
    'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' >"$ext"
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 \
    -keyout "$keys/dev-ca.key" -out "$keys/dev-ca.pem" \
    -subj "/O=pecbox development/CN=pecbox development update CA" \
    -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -sha256 -keyout "$key" -out "$keys/dev-signing.csr" \
    -subj "/O=pecbox development/CN=pecbox development bundle signing" 2>/dev/null
  openssl x509 -req -sha256 -days 1825 -in "$keys/dev-signing.csr" -CA "$keys/dev-ca.pem" \
    -CAkey "$keys/dev-ca.key" -CAcreateserial -extfile "$ext" -out "$cert" 2>/dev/null
  rm -f "$keys/dev-signing.csr"
  chmod 600 "$keys"/*.key
fi
echo "$cert" "$key" "$keyring"
