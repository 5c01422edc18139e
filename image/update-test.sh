#!/usr/bin/env bash
# End-to-end RAUC update test in the x86_64 test image (qemu TCG, OVMF, grub EFI A/B):
#   image/build.sh --rauc && image/update-test.sh        (root)
# Slot A gets the image/build.sh --rauc rootfs prepared by image/bundle.sh as version
# 1.0.0; the ESP gets grub EFI (image/rauc/grub.cfg) and grubenv ORDER="A B" A_OK=1.
# Bundles (image/bundle.sh, all from the same rootfs) go on a second virtio disk, the
# steps of each boot on a third; the test-only unit pecbox-test-update.service
# (image/test-rauc/) runs them with `pecbox update install` and reports on the console.
#   boot 1 (A 1.0.0): refusals (another key, corrupted payload, older version, wrong
#                     compatible), then the good bundle 1.1.0 is installed while the host
#                     sends a PEC message and checks SMTP/POP3 keep answering; reboot.
#   boot 2 (B 1.1.0): new version runs, slot marked good, bob's mailbox unchanged; the
#                     "bad" bundle 1.2.0 (its /usr/bin/pecbox exits 1) goes into A; reboot.
#   boot 3 (A 1.2.0): pecbox fails, systemd's StartLimitAction reboots the box.
#   boot 4 (B 1.1.0): grub fell back to B (A_TRY was left at 1), B marked good, mailbox intact.
# KEEP=1 keeps the work directory (console logs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
rimg=$out/rauc/pecbox-x86_64.img
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -f "$rimg" ] || { echo "no $rimg: run image/build.sh --rauc first" >&2; exit 1; }
t0=$SECONDS
missing=()
for p in grub-efi-amd64-bin grub-common ovmf mtools qemu-system-x86 e2fsprogs fdisk openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

work=$(mktemp -d /tmp/pecbox-update.XXXXXX)
qemu=
cleanup() {
  if [ -n "$qemu" ] && kill -0 "$qemu" 2>/dev/null; then kill "$qemu"; wait "$qemu" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
log=/dev/null
fail() { echo "UPDATE-TEST FAILED: $*" >&2; echo "--- console $log (last 40 lines)" >&2; tail -40 "$log" | tr -d '\r' >&2; exit 1; }
part() { # image n → start size (sectors)
  sfdisk -J "$1" | python3 -c "
import json, sys
p = json.load(sys.stdin)['partitiontable']['partitions'][$2 - 1]
print(p['start'], p['size'])"
}

# --- bundles -------------------------------------------------------------------------
read -r start size < <(part "$rimg" 2)
dd if="$rimg" of="$work/rootfs.ext4" bs=512 skip="$start" count="$size" conv=sparse status=none
mkdir -p "$work/b"
bundle() { # name version [env…]
  local name=$1 version=$2
  shift 2
  env PECBOX_ROOTFS="${ROOTFS:-$work/rootfs.ext4}" PECBOX_BUNDLE_OUT="$work/b/$name.raucb" "$@" \
    image/bundle.sh "$version" | grep -v '^time:' | sed "s|^|  $name: |"
}
# Another CA and signing key (not in the box's keyring).
ok=$work/otherkeys
mkdir -p "$ok"
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' >"$ok/ext"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -keyout "$ok/ca.key" -out "$ok/ca.pem" \
  -subj "/CN=not the pecbox update CA" -addext 'basicConstraints=critical,CA:TRUE' \
  -addext 'keyUsage=critical,keyCertSign' 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$ok/sign.key" -out "$ok/sign.csr" -subj "/CN=other signer" 2>/dev/null
openssl x509 -req -sha256 -days 30 -in "$ok/sign.csr" -CA "$ok/ca.pem" -CAkey "$ok/ca.key" \
  -CAcreateserial -extfile "$ok/ext" -out "$ok/sign.pem" 2>/dev/null
# The "bad" rootfs: pecbox replaced by a script that fails (its health check never passes).
cp --sparse=always "$work/rootfs.ext4" "$work/bad.ext4"
printf '#!/bin/sh\necho "broken pecbox (update test)" >&2\nexit 1\n' >"$work/broken-pecbox"
debugfs -w -f - "$work/bad.ext4" >/dev/null 2>&1 <<EOF
rm /usr/bin/pecbox
write $work/broken-pecbox /usr/bin/pecbox
set_inode_field /usr/bin/pecbox mode 0100755
set_inode_field /usr/bin/pecbox uid 0
set_inode_field /usr/bin/pecbox gid 0
EOF
[ "$(debugfs -R 'cat /usr/bin/pecbox' "$work/bad.ext4" 2>/dev/null | head -1)" = '#!/bin/sh' ] || fail "could not break the bad rootfs"

t_b=$SECONDS
env PECBOX_ROOTFS="$work/rootfs.ext4" PECBOX_ROOTFS_OUT="$work/slotA.ext4" PECBOX_BUNDLE_OUT="$work/a.raucb" \
  image/bundle.sh 1.0.0 >/dev/null
rm -f "$work/a.raucb"
bundle good 1.1.0 &
bundle older 0.9.0 &
wait
bundle wrong-compatible 1.1.1 PECBOX_COMPATIBLE=pecbox-rpi4 &
bundle other-key 1.1.2 PECBOX_RAUC_CERT="$ok/sign.pem" PECBOX_RAUC_KEY="$ok/sign.key" PECBOX_RAUC_KEYRING="$ok/ca.pem" &
wait
ROOTFS=$work/bad.ext4 bundle bad 1.2.0
# Corrupted: one byte of the squashfs payload changed (signature and manifest intact).
cp "$work/b/good.raucb" "$work/b/corrupted.raucb"
printf '\x5a' | dd of="$work/b/corrupted.raucb" bs=1 seek=$((40 * 1024 * 1024 + 123)) conv=notrunc status=none
cmp -s "$work/b/good.raucb" "$work/b/corrupted.raucb" && fail "corruption did not change the bundle"
mkfs.ext4 -q -F -L pecbox-bundles -d "$work/b" "$work/bundles.img" $(($(du -sm "$work/b" | cut -f1) + 64))M >/dev/null
t_bundles=$((SECONDS - t_b))
echo "bundles: $(ls "$work/b" | tr '\n' ' ')in ${t_bundles} s"

# --- the disk: slot A, empty slot B, grub EFI + grubenv on the ESP ----------------------
cp --sparse=always "$rimg" "$work/disk.img"
read -r start size < <(part "$work/disk.img" 2)
dd if="$work/slotA.ext4" of="$work/disk.img" bs=512 seek="$start" conv=notrunc,sparse status=none
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" \
  --modules="part_gpt fat ext2 linux normal echo test loadenv configfile" \
  "boot/grub/grub.cfg=image/rauc/grub.cfg"
read -r esp_start _ < <(part "$work/disk.img" 1)
esp="$work/disk.img@@$((esp_start * 512))"
mmd -i "$esp" ::EFI ::EFI/BOOT 2>/dev/null || true
mcopy -o -i "$esp" "$work/BOOTX64.EFI" ::EFI/BOOT/BOOTX64.EFI
grub-editenv "$work/grubenv" create
grub-editenv "$work/grubenv" set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
mcopy -o -i "$esp" "$work/grubenv" ::EFI/BOOT/grubenv
grubenv() { mcopy -o -i "$esp" ::EFI/BOOT/grubenv "$work/grubenv" && grub-editenv "$work/grubenv" list | tr '\n' ' '; }
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"

read -r p25 p465 p995 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
fwd="hostfwd=tcp:127.0.0.1:$p25-:25,hostfwd=tcp:127.0.0.1:$p465-:465,hostfwd=tcp:127.0.0.1:$p995-:995"

boot() { # name steps-script: starts qemu (the box reboots → qemu exits: -no-reboot)
  log=$work/console-$1.log
  mkdir -p "$work/steps-$1"
  printf '%s\n' "$2" >"$work/steps-$1/steps"
  mkfs.ext4 -q -F -L pecbox-steps -d "$work/steps-$1" "$work/steps-$1.img" 4M >/dev/null
  tb=$SECONDS
  qemu-system-x86_64 -M q35 -accel tcg -m 1024 -smp 2 -display none -no-reboot \
    -serial "file:$log" -monitor "unix:$work/monitor.sock,server,nowait" \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive if=pflash,format=raw,file="$work/vars.fd" \
    -drive file="$work/disk.img",if=virtio,format=raw \
    -drive file="$work/bundles.img",if=virtio,format=raw,readonly=on \
    -drive file="$work/steps-$1.img",if=virtio,format=raw,readonly=on \
    -netdev "user,id=net0,$fwd" -device virtio-net-pci,netdev=net0 >"$work/qemu-$1.log" 2>&1 </dev/null &
  qemu=$!
}
console() { tr -d '\r' <"$log"; }
wait_for() { # pattern seconds
  local deadline=$((SECONDS + $2))
  until grep -aq -- "$1" "$log" 2>/dev/null; do
    kill -0 "$qemu" 2>/dev/null || fail "qemu exited while waiting for $1"
    ((SECONDS < deadline)) || fail "no '$1' on the console within $2 s"
    sleep 0.5
  done
}
wait_exit() { # seconds
  local deadline=$((SECONDS + $1))
  while kill -0 "$qemu" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "qemu still running after $1 s"
    sleep 0.5
  done
  wait "$qemu" 2>/dev/null || true
  qemu=
}
shutdown() { # ctrl-alt-del: systemd reboots, -no-reboot makes qemu exit
  python3 - "$work/monitor.sock" <<'P'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.3)
s.sendall(b"sendkey ctrl-alt-delete\n"); time.sleep(0.5); s.close()
P
  wait_exit 180
}
expect() { console | grep -aE -- "$1" >/dev/null || fail "$2 (console: no /$1/)"; }
booted() { # slot version
  wait_for 'PECBOX-UPD-STATUS-END' 600
  console | grep -aE 'PECBOX-UPD-(BOOTED|MARKED|GRUBENV|STATUS) ' | sed 's/^.*PECBOX-UPD-/  /'
  expect "PECBOX-UPD-BOOTED slot=$1 version=$2\$" "expected slot $1 running $2"
}
clients=$root/tests/support/clients.py
pw() { awk -v a="$1" '$1 == a { print $2 }' image/test-mailboxes; }
alice=alice@pec.box.test bob=bob@pec.box.test
fetch() { # user dir
  rm -rf "$2"
  python3 "$clients" fetch --port "$p995" --ca "$work/ca.pem" --user "$1" --password "$(pw "$1")" --out "$2" >/dev/null
}
digest() { (cd "$1" && sha256sum ./*.eml 2>/dev/null | sort | sha256sum | cut -c1-16); }
smtp_banner() {
  python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),10); s.settimeout(10); print(s.recv(200).decode(errors="replace").split()[0])' "$p25" 2>/dev/null || echo none
}

# --- boot 1: slot A 1.0.0, refusals, good bundle installed while serving -------------------
boot 1 'for b in other-key corrupted older wrong-compatible; do install_bundle $b; done
install_bundle good
pecbox update status 2>&1 | sed "s/^/PECBOX-UPD-AFTER /"'
booted A 1.0.0
t_boot1=$((SECONDS - tb))
wait_for 'PECBOX-READY ' 300
console | grep -aoE 'PECBOX-CA [A-Za-z0-9+/=]+' | head -1 | cut -d' ' -f2 | base64 -d >"$work/ca.pem"
wait_for 'PECBOX-MAILBOXES-OK' 120
subject="Prima dell'aggiornamento $(date +%s)"
python3 "$clients" send --port "$p465" --ca "$work/ca.pem" --user "$alice" --password "$(pw $alice)" \
  --to "$bob" --subject "$subject" --body "Messaggio che deve sopravvivere all'aggiornamento." || fail "submission over 465"
wait_for 'PECBOX-UPD-BEGIN good' 600
# While RAUC writes slot B: SMTP banner and POP3 must keep answering.
serving=0 checks=0
until grep -aq 'PECBOX-UPD-END good' "$log"; do
  kill -0 "$qemu" 2>/dev/null || fail "qemu exited during the install"
  checks=$((checks + 1))
  b=$(smtp_banner)
  if [ "$b" = 220 ] && fetch "$bob" "$work/during"; then serving=$((serving + 1)); fi
  sleep 1
done
for _ in $(seq 1 60); do
  fetch "$alice" "$work/alice-before" && fetch "$bob" "$work/bob-before" || true
  python3 image/check-receipts.py "$work/alice-before" "$work/bob-before" "$subject" >/dev/null 2>&1 && break
  sleep 1
done
python3 image/check-receipts.py "$work/alice-before" "$work/bob-before" "$subject" >/dev/null || fail "receipts before the update"
before=$(digest "$work/bob-before") nbefore=$(ls "$work/bob-before" | wc -l)
wait_for 'PECBOX-UPD-DONE' 120
console | grep -aE 'PECBOX-UPD-(BEGIN|OUT|END|AFTER) ' | sed 's/^.*PECBOX-UPD-/  /' | grep -v '^OUT good [0-9]*%' || true
for b in other-key corrupted older wrong-compatible; do expect "PECBOX-UPD-END $b rc=1" "$b not refused"; done
expect 'PECBOX-UPD-OUT other-key .*not trusted' "other key: no clear message"
expect 'PECBOX-UPD-OUT corrupted .*damaged' "corrupted: no clear message"
expect 'PECBOX-UPD-OUT older .*not newer' "older: no clear message"
expect 'PECBOX-UPD-OUT wrong-compatible .*wrong compatible' "wrong compatible: no clear message"
expect 'PECBOX-UPD-END good rc=0' "good bundle not installed"
((serving > 0 && serving == checks)) || fail "box not serving during the install ($serving of $checks checks)"
echo "boot 1: refusals ok; good bundle installed while serving (SMTP 220 + POP3 fetch: $serving/$checks checks); bob has $nbefore messages ($before); grubenv: $(grubenv)"
shutdown
echo "boot 1 total: $((SECONDS - tb)) s (to status: $t_boot1 s)"

# --- boot 2: slot B 1.1.0, data intact; install the bad bundle into A ----------------------
boot 2 'install_bundle bad'
booted B 1.1.0
wait_for 'PECBOX-READY ' 300
wait_for 'PECBOX-UPD-MARKED slot=B' 120
fetch "$bob" "$work/bob-after"
[ "$(digest "$work/bob-after")" = "$before" ] || fail "bob's messages changed across the update"
wait_for 'PECBOX-UPD-DONE' 600
expect 'PECBOX-UPD-END bad rc=0' "bad bundle not installed"
echo "boot 2: slot B 1.1.0 running, marked good, bob's $nbefore messages intact; bad 1.2.0 installed into A; grubenv: $(grubenv)"
shutdown
echo "boot 2 total: $((SECONDS - tb)) s"

# --- boot 3: slot A 1.2.0, pecbox fails → systemd reboots --------------------------------
boot 3 ':'
wait_exit 600
expect 'rauc\.slot=A' "boot 3 did not try slot A"
echo "boot 3: slot A (1.2.0) tried, pecbox failed, box rebooted by systemd after $((SECONDS - tb)) s; grubenv: $(grubenv)"
{ console | grep -aE 'PECBOX-STOPPED|systemd-shutdown.*Rebooting' || true; } | sed 's/^.*\] //' | sed 's/^/  /'

# --- boot 4: back on slot B 1.1.0, marked good, data intact --------------------------------
boot 4 'pecbox update status 2>&1 | sed "s/^/PECBOX-UPD-LATER /"'
booted B 1.1.0
wait_for 'PECBOX-UPD-MARKED slot=B' 300
wait_for 'PECBOX-UPD-DONE' 120
fetch "$bob" "$work/bob-rollback"
[ "$(digest "$work/bob-rollback")" = "$before" ] || fail "bob's messages changed across the rollback"
console | grep -a 'PECBOX-UPD-LATER' | sed 's/^.*PECBOX-UPD-LATER/  /'
echo "boot 4: fell back to slot B 1.1.0, marked good, bob's $nbefore messages intact; grubenv: $(grubenv)"
shutdown
echo "boot 4 total: $((SECONDS - tb)) s"
echo "UPDATE-TEST-OK bundles ${t_bundles} s, total $((SECONDS - t0)) s"
