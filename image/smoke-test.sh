#!/usr/bin/env bash
# Boots the x86_64 test image (image/build.sh) in qemu-system-x86_64 (TCG, no KVM) with
# user networking that forwards the box's 25, 465, 587, 993, 995 and 443 to free ports
# on 127.0.0.1, and checks from the host:
#   - boot-to-READY seconds (qemu start → the READY report on the serial console);
#   - pecbox runs as its own user (uid 480) with only CAP_NET_BIND_SERVICE, no new
#     privileges, seccomp, the sandbox of systemd/pecbox.service, data on its partition;
#   - a PEC message alice → bob over the forwarded submissions port (clients.py) and the
#     receipts over POP3S: accettazione and avvenuta consegna for alice, the busta for bob;
#   - the watchdog keep-alives arrive, and ctrl-alt-del stops pecbox cleanly (exit 0).
#   image/smoke-test.sh            (after image/build.sh; the image is not modified: -snapshot)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
img=$out/pecbox-x86_64.img
[ -f "$img" ] || { echo "no $img: run image/build.sh first" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
}

tmp=$(mktemp -d /tmp/pecbox-smoke.XXXXXX)
log=$tmp/console.log
qemu=""
cleanup() {
  if [ -n "$qemu" ] && kill -0 "$qemu" 2>/dev/null; then kill "$qemu"; wait "$qemu" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$tmp"; else echo "kept $tmp"; fi
}
trap cleanup EXIT
fail() { echo "SMOKE-TEST FAILED: $*" >&2; echo "--- console (last 40 lines)" >&2; tail -40 "$log" | tr -d '\r' >&2; exit 1; }

# Free high ports on 127.0.0.1 for the box's ports.
read -r p25 p465 p587 p993 p995 p443 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
fwd="hostfwd=tcp:127.0.0.1:$p25-:25,hostfwd=tcp:127.0.0.1:$p465-:465,hostfwd=tcp:127.0.0.1:$p587-:587"
fwd="$fwd,hostfwd=tcp:127.0.0.1:$p993-:993,hostfwd=tcp:127.0.0.1:$p995-:995,hostfwd=tcp:127.0.0.1:$p443-:443"
echo "forwarded: 25→$p25 465→$p465 587→$p587 993→$p993 995→$p995 443→$p443"

t0=$EPOCHREALTIME
since() { awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.1f", a - b }'; }
qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 -display none -no-reboot \
  -serial "file:$log" -monitor "unix:$tmp/monitor.sock,server,nowait" \
  -kernel "$out/vmlinuz" -initrd "$out/initrd.img" -append "$(cat "$out/cmdline.txt")" \
  -drive "file=$img,if=virtio,format=raw" -snapshot \
  -netdev "user,id=net0,$fwd" -device virtio-net-pci,netdev=net0 &
qemu=$!

wait_for() { # pattern seconds
  local deadline=$((SECONDS + $2))
  until grep -aq -- "$1" "$log" 2>/dev/null; do
    kill -0 "$qemu" 2>/dev/null || fail "qemu exited while waiting for $1"
    ((SECONDS < deadline)) || fail "no '$1' on the console within $2 s"
    sleep 0.5
  done
}
console() { tr -d '\r' <"$log"; }

wait_for 'PECBOX-READY ' 600
boot_to_ready=$(since)
ready_line=$(console | grep -ao 'PECBOX-READY .*' | head -1)
echo "$ready_line"
# The report comes a moment after READY: take that moment off (guest uptime now minus
# the guest's READY time).
boot_to_ready=$(echo "$ready_line" | awk -v host="$boot_to_ready" '{
  for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 }
  printf "%.1f", host - (v["uptime"] - v["guest_ready_at"]) }')
echo "boot-to-READY: $boot_to_ready s (qemu start to pecbox's READY=1, TCG)"

# The daemon's user and sandbox, as seen inside the box.
report=$(console | grep -aoE 'PECBOX-(SHOW|PROC|MOUNT|ROOT|SECURITY) .*' | sed 's/^PECBOX-//')
echo "$report" | sed 's/^/  /'
expect() { echo "$report" | grep -qE "$1" || fail "inside the box: expected /$1/"; }
expect '^SHOW User=pecbox$'
expect '^SHOW Group=pecbox$'
expect '^SHOW Type=notify$'
expect '^SHOW WatchdogUSec=30s$'
expect '^SHOW NoNewPrivileges=yes$'
expect '^SHOW ProtectSystem=strict$'
expect '^SHOW ProtectHome=yes$'
expect '^SHOW PrivateTmp=yes$'
expect '^SHOW PrivateDevices=yes$'
expect '^SHOW CapabilityBoundingSet=cap_net_bind_service$'
expect '^SHOW AmbientCapabilities=cap_net_bind_service$'
expect '^PROC Uid: 480 480 480 480$'
expect '^PROC Gid: 480 480 480 480$'
expect '^PROC CapEff: 0000000000000400$'
expect '^PROC CapBnd: 0000000000000400$'
expect '^PROC NoNewPrivs: 1$'
expect '^PROC Seccomp: 2$'
expect '^MOUNT /dev/vda4 ext4 .*owner=pecbox:pecbox:700$'
expect '^ROOT /dev/vda2 ext4$'

ca=$tmp/ca.pem
console | grep -aoE 'PECBOX-CA [A-Za-z0-9+/=]+' | head -1 | cut -d' ' -f2 | base64 -d >"$ca"
grep -q 'BEGIN CERTIFICATE' "$ca" || fail "no provider CA on the console"

wait_for 'PECBOX-MAILBOXES-OK' 120
console | grep -ao 'PECBOX-MAILBOXES-OK.*' | head -1

# One PEC message alice → bob through the forwarded ports, as a mail client would.
clients=$root/tests/support/clients.py
mailbox() { awk -v a="$1" '$1 == a { print $2 }' image/test-mailboxes; }
alice=alice@pec.box.test bob=bob@pec.box.test
subject="Prova dalla box $(date +%s)"
t_send=$EPOCHREALTIME
python3 "$clients" send --port "$p465" --ca "$ca" --user "$alice" --password "$(mailbox $alice)" \
  --to "$bob" --subject "$subject" --body "Ciao Bob, dalla box di prova." || fail "submission over $p465"
ok=""
for _ in $(seq 1 90); do
  rm -rf "$tmp/alice" "$tmp/bob"
  python3 "$clients" fetch --port "$p995" --ca "$ca" --user "$alice" --password "$(mailbox $alice)" --out "$tmp/alice" >/dev/null
  python3 "$clients" fetch --port "$p995" --ca "$ca" --user "$bob" --password "$(mailbox $bob)" --out "$tmp/bob" >/dev/null
  if python3 image/check-receipts.py "$tmp/alice" "$tmp/bob" "$subject" >"$tmp/check" 2>&1; then ok=1; break; fi
  sleep 1
done
cat "$tmp/check"
[ -n "$ok" ] || fail "receipts over POP3S"
echo "send-to-receipts: $(awk -v a="$EPOCHREALTIME" -v b="$t_send" 'BEGIN { printf "%.1f", a - b }') s"
if [ -x "$out/pecbox-x86_64" ]; then
  "$out/pecbox-x86_64" verify --ca "$ca" "$tmp"/alice/*.eml "$tmp"/bob/*.eml | grep -E ': (VALID|INVALID|UNREADABLE)$' | sed "s|$tmp/||" \
    || fail "pecbox verify on the receipts"
fi
for port in "$p993:imaps" "$p443:panel"; do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5).close()" "${port%%:*}" 2>/dev/null; then
    echo "${port#*:}: port answers (not checked further)"
  else
    echo "${port#*:}: port does not answer"
  fi
done

# Keep-alives: the report reads systemd's last keep-alive time twice, 16 s apart.
wait_for 'PECBOX-WATCHDOG ' 60
watchdog=$(console | grep -ao 'PECBOX-WATCHDOG .*' | head -1)
echo "$watchdog"
wd_first=$(echo "$watchdog" | sed -n 's/.* first=\([0-9]*\).*/\1/p')
wd_later=$(echo "$watchdog" | sed -n 's/.* later=\([0-9]*\).*/\1/p')
[ -n "$wd_first" ] && [ -n "$wd_later" ] && ((wd_first > 0 && wd_later > wd_first)) \
  || fail "no watchdog keep-alive after READY"
echo "watchdog: keep-alives at ${wd_first} µs and ${wd_later} µs (guest monotonic clock)"

# Stop the box with ctrl-alt-del: systemd stops pecbox (SIGTERM) and reboots;
# -no-reboot turns that into qemu's exit.
python3 - "$tmp/monitor.sock" <<'P'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall(b"sendkey ctrl-alt-delete\n")
time.sleep(0.5)
s.close()
P
wait_for 'PECBOX-STOPPED' 120
stopped=$(console | grep -ao 'PECBOX-STOPPED.*' | head -1)
echo "$stopped"
for _ in $(seq 1 120); do kill -0 "$qemu" 2>/dev/null || break; sleep 0.5; done
kill -0 "$qemu" 2>/dev/null && fail "qemu still running 60 s after ctrl-alt-del"
wait "$qemu" || true
qemu=""
echo "$stopped" | grep -q 'result=success code=exited status=0 ' || fail "pecbox did not stop cleanly"
echo "$stopped" | grep -qE 'restarts=0( |$)' || fail "pecbox restarted"
echo "SMOKE-TEST-OK boot-to-READY ${boot_to_ready} s, total $(since) s"
