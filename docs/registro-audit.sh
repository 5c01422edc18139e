#!/bin/bash
# Checks a month exported with `pecbox log export` without pecbox: jq, sha256sum and
# openssl only (docs/registro.md). Usage: registro-audit.sh EXPORT.json CA.pem
# Exit 0: every record's hash, the chain and the signed checkpoint hold. Exit 1: the
# first record or check that fails is named.
set -euo pipefail
export_file=$1
ca=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "registro-audit: $*" >&2; exit 1; }

jq -e '.format == "pecbox-registro/1"' "$export_file" >/dev/null || fail "not a pecbox-registro/1 export"
expected_seq=$(jq -r '.checkpoint.first_seq' "$export_file")
prev=$(jq -r '.checkpoint.prev_hash' "$export_file")
count=0
# Four lines a record: seq, prev, hash, the record without prev and hash as compact JSON.
while IFS= read -r seq && IFS= read -r rprev && IFS= read -r hash && IFS= read -r body; do
  [ "$seq" = "$expected_seq" ] || fail "record $expected_seq is missing or out of place (found $seq)"
  [ "$rprev" = "$prev" ] || fail "record $seq does not follow record $((seq - 1))"
  computed=$(printf '%s%s' "$rprev" "$body" | sha256sum | cut -c1-64)
  [ "$computed" = "$hash" ] || fail "record $seq was altered"
  prev=$hash
  expected_seq=$((seq + 1))
  count=$((count + 1))
done < <(jq -r '.records[] | (.seq | tostring), .prev, .hash, (del(.prev, .hash) | tojson)' "$export_file")

[ "$count" = "$(jq -r '.checkpoint.count' "$export_file")" ] || fail "$count records, the checkpoint says otherwise"
[ "$prev" = "$(jq -r '.checkpoint.last_hash' "$export_file")" ] || fail "the last record is not the one the checkpoint seals"

# The checkpoint's signature is a detached CMS over these fields, in this order.
jq -cj '.checkpoint | {month, first_seq, last_seq, count, prev_hash, last_hash, provider, created}' \
  "$export_file" >"$tmp/checkpoint.json"
jq -r '.checkpoint.signature' "$export_file" | base64 -d >"$tmp/checkpoint.p7s"
openssl smime -verify -binary -inform DER -in "$tmp/checkpoint.p7s" -content "$tmp/checkpoint.json" \
  -CAfile "$ca" -out /dev/null 2>"$tmp/openssl.err" ||
  fail "the checkpoint's signature does not verify: $(head -1 "$tmp/openssl.err")"

echo "$(jq -r .month "$export_file"): $count records, chain and signed checkpoint verified"
