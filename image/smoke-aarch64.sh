#!/usr/bin/env bash
# Smoke test of the static aarch64 binary under qemu-aarch64-static (no binfmt needed):
# `pecbox run` on the embedded demo default in a temporary folder, one PEC message
# alice → bob over submissions (4465) with tests/support/clients.py, the receipts over
# POP3S (4995), their signatures checked with the aarch64 binary's own `pecbox verify`,
# then SIGTERM and exit 0.
#   image/smoke-aarch64.sh [BINARY]     (default image/out/pecbox-aarch64, see build-binary.sh)
# Runs in its own network namespace (unshare -n, needs root) so the demo's fixed ports
# never meet another pecbox on this machine. PECBOX_RUNNER= runs a native binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$(realpath "${1:-image/out/pecbox-aarch64}")
runner=${PECBOX_RUNNER-qemu-aarch64-static}
[ -x "$bin" ] || { echo "no binary $bin: run image/build-binary.sh aarch64 first" >&2; exit 1; }
if [ -n "$runner" ] && ! command -v "$runner" >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
if [ -z "${PECBOX_SMOKE_IN_NETNS:-}" ]; then
  exec unshare --net env PECBOX_SMOKE_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

echo "binary: $(file -b "$bin")"
echo "runner: ${runner:-native}"
tmp=$(mktemp -d)
daemon=""
cleanup() { [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
clients=$root/tests/support/clients.py
pecbox() { $runner "$bin" "$@"; }

t0=$EPOCHREALTIME
since() { awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.1f", a - b }'; }
(cd "$tmp" && exec $runner "$bin" run) >"$tmp/stdout" 2>"$tmp/stderr" &
daemon=$!
for _ in $(seq 1 600); do
  grep -q '^ready:' "$tmp/stdout" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$tmp/stdout" "$tmp/stderr"; echo "pecbox exited early" >&2; exit 1; }
  sleep 0.2
done
grep -q '^ready:' "$tmp/stdout" || { cat "$tmp/stdout" "$tmp/stderr"; echo "no ready: line in 120 s" >&2; exit 1; }
echo "start to ready (first start: CA, signing and TLS keys, two mailboxes): $(since) s"
password() { # address: the password printed once after "created <address>"
  awk -v a="$1" '$0 == "created " a {f=1; next} f && /^password: / {print $2; exit}' "$tmp/stdout"
}
alice_pw=$(password alice@pec.localhost)
bob_pw=$(password bob@pec.localhost)
[ -n "$alice_pw" ] && [ -n "$bob_pw" ] || { cat "$tmp/stdout"; echo "demo passwords not printed" >&2; exit 1; }
ca=$tmp/pecbox-data/certs/ca.pem

subject="Prova aarch64 $(date +%s)"
python3 "$clients" send --port 4465 --ca "$ca" --user alice@pec.localhost --password "$alice_pw" \
  --to bob@pec.localhost --subject "$subject" --body "Ciao Bob, da un pecbox aarch64."
ok=""
for _ in $(seq 1 60); do
  rm -rf "$tmp/alice" "$tmp/bob"
  python3 "$clients" fetch --port 4995 --ca "$ca" --user alice@pec.localhost --password "$alice_pw" --out "$tmp/alice" >/dev/null
  python3 "$clients" fetch --port 4995 --ca "$ca" --user bob@pec.localhost --password "$bob_pw" --out "$tmp/bob" >/dev/null
  if python3 image/check-receipts.py "$tmp/alice" "$tmp/bob" "$subject" >"$tmp/check" 2>&1; then ok=1; break; fi
  sleep 1
done
cat "$tmp/check"
[ -n "$ok" ] || { cat "$tmp/stderr"; exit 1; }
# The receipts and the busta are signed by this provider: verify them on aarch64 too.
verify_rc=0
pecbox verify --ca "$ca" "$tmp"/alice/*.eml "$tmp"/bob/*.eml >"$tmp/verify" || verify_rc=$?
grep -E ': (VALID|INVALID|UNREADABLE)$|^  kind: ' "$tmp/verify" | sed "s|$tmp/||"
[ "$verify_rc" = 0 ] || { cat "$tmp/verify"; echo "pecbox verify (aarch64) exit $verify_rc" >&2; exit 1; }

kill -TERM "$daemon"
rc=0; wait "$daemon" || rc=$?
daemon=""
[ "$rc" = 0 ] || { cat "$tmp/stderr"; echo "pecbox exited $rc after SIGTERM" >&2; exit 1; }
echo "SMOKE-AARCH64-OK (total $(since) s)"
