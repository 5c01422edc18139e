#!/usr/bin/env bash
# Offline checks of the units (systemd-analyze from the host's systemd, no PID 1 needed):
#   systemd/check.sh [PECBOX_BINARY]
# 1. `systemd-analyze verify --root=STAGING` on pecbox.service, in a staging root laid out
#    as on the appliance (binary, unit, sysusers entry, config), and on the test image's
#    units (image/test-units, with the pecbox.service drop-in);
# 2. `systemd-analyze security --offline=true --threshold=20`: exposure of pecbox.service
#    at most 2.0.
# The binary defaults to image/out/pecbox-x86_64, else target/debug|release/pecbox, else a
# stand-in script (verify only needs ExecStart to be executable).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail=0

bin=${1:-}
for c in image/out/pecbox-x86_64 target/release/pecbox target/debug/pecbox; do
  [ -n "$bin" ] || [ ! -x "$c" ] || bin=$c
done
if [ -n "$bin" ]; then
  install -D -m 0755 "$bin" "$stage/usr/bin/pecbox"
else
  install -d "$stage/usr/bin"
  printf '#!/bin/sh\nexit 0\n' >"$stage/usr/bin/pecbox"; chmod 0755 "$stage/usr/bin/pecbox"
fi
install -D -m 0644 systemd/pecbox.service "$stage/usr/lib/systemd/system/pecbox.service"
install -D -m 0644 systemd/pecbox.sysusers "$stage/usr/lib/sysusers.d/pecbox.conf"
cp -a buildroot/board/pecbox/rootfs-overlay/. "$stage/"
# systemd's own units (targets, sysinit.target, ...) and the shell the test units use,
# taken from this host's systemd as the image's systemd would provide them.
cp -a /usr/lib/systemd/system/. "$stage/usr/lib/systemd/system/"
install -m 0644 systemd/pecbox.service "$stage/usr/lib/systemd/system/pecbox.service"
install -D -m 0755 /bin/sh "$stage/bin/sh"

verify() { # unit path inside the staging root, [note]
  local out
  if out=$(systemd-analyze verify --root="$stage" "$1" 2>&1) && [ -z "$out" ]; then
    echo "ok   verify $1${2:+ ($2)}"
  else
    echo "FAIL verify $1${2:+ ($2)}"; printf '%s\n' "$out" | sed 's/^/     /'; fail=1
  fi
}
verify /usr/lib/systemd/system/pecbox.service

# The test image's units and drop-in (image/build.sh installs them the same way).
install -d "$stage/usr/local/lib/pecbox-test" "$stage/etc/systemd/system/pecbox.service.d"
install -m 0755 image/test-bin/* "$stage/usr/local/lib/pecbox-test/"
install -m 0644 image/test-units/*.service "$stage/etc/systemd/system/"
install -m 0644 image/test-units/pecbox.service.d/*.conf "$stage/etc/systemd/system/pecbox.service.d/"
for u in image/test-units/*.service; do verify "/etc/systemd/system/$(basename "$u")" "test image"; done
verify /usr/lib/systemd/system/pecbox.service "with the test image's drop-in"

# Exposure, as systemd computes it, on the production unit.
if out=$(systemd-analyze security --offline=true --threshold=20 systemd/pecbox.service 2>&1); then
  echo "ok   security $(printf '%s\n' "$out" | tail -1 | sed 's/^→ //')"
else
  echo "FAIL security (threshold 2.0):"; printf '%s\n' "$out" | grep -E '✗|Overall' | sed 's/^/     /'; fail=1
fi

if [ "$fail" = 0 ]; then echo "unit check: all passed"; else echo "unit check: FAILED"; fi
exit "$fail"
