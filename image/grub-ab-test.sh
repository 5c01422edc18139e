#!/usr/bin/env bash
# Boot-loader half of the A/B check on the x86_64 test image, under qemu TCG with OVMF:
# grub EFI (image/rauc/grub.cfg, grub-mkstandalone) on the ESP picks the slot from
# EFI/BOOT/grubenv exactly as RAUC's grub backend leaves it:
#   1. ORDER="A B", A_OK=1                 → slot A boots (A_TRY=1 until marked good)
#   2. "install" into B (ORDER="B A", B_OK=1, B_TRY=0, as `rauc install` does)
#                                          → slot B boots, B_TRY=1
#   3. B never marked good (power cut)     → next boot falls back to slot A
#   4. B marked good (B_TRY=0, as `rauc status mark-good` does) → slot B again
# Needs image/build.sh's image/out/pecbox-x86_64.img. Root; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
t0=$SECONDS
missing=()
for p in grub-efi-amd64-bin grub-common ovmf mtools qemu-system-x86 e2fsprogs fdisk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

work=$(mktemp -d /tmp/pecbox-grub-ab.XXXXXX)
qpid=
trap '[ -z "$qpid" ] || kill "$qpid" 2>/dev/null; rm -rf "$work"' EXIT

# The slot content: the built rootfs prepared by image/bundle.sh (kernel in /boot,
# RAUC config, no "/" in fstab), put into both slots.
PECBOX_ROOTFS_OUT=$work/slot.ext4 PECBOX_BUNDLE_OUT=$work/unused.raucb image/bundle.sh 0.0.1 >/dev/null
cp --sparse=always "$out/pecbox-x86_64.img" "$work/disk.img"
part() { # start size (sectors) of partition $1
  sfdisk -J "$work/disk.img" | python3 -c "
import json, sys
p = json.load(sys.stdin)['partitiontable']['partitions'][$1 - 1]
print(p['start'], p['size'])"
}
for n in 2 3; do
  read -r start size < <(part $n)
  dd if="$work/slot.ext4" of="$work/disk.img" bs=512 seek="$start" conv=notrunc,sparse status=none
done

# The ESP: grub EFI with the slot-choosing grub.cfg built in, and the grubenv.
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" \
  --modules="part_gpt fat ext2 linux normal echo test loadenv configfile" \
  "boot/grub/grub.cfg=image/rauc/grub.cfg"
read -r esp_start _ < <(part 1)
esp="$work/disk.img@@$((esp_start * 512))"
mmd -i "$esp" ::EFI ::EFI/BOOT 2>/dev/null || true
mcopy -o -i "$esp" "$work/BOOTX64.EFI" ::EFI/BOOT/BOOTX64.EFI
env_set() {
  mcopy -o -i "$esp" ::EFI/BOOT/grubenv "$work/grubenv" 2>/dev/null || grub-editenv "$work/grubenv" create
  grub-editenv "$work/grubenv" set "$@"
  mcopy -o -i "$esp" "$work/grubenv" ::EFI/BOOT/grubenv
}
env_get() {
  mcopy -o -i "$esp" ::EFI/BOOT/grubenv "$work/grubenv"
  grub-editenv "$work/grubenv" list | tr '\n' ' '
}
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"

fail=0
boot() { # expected slot; boots until the kernel command line shows the slot, then cuts power
  local want=$1 log=$work/console-$2.log t=$SECONDS got=
  qemu-system-x86_64 -M q35 -m 1024 -smp 2 -nographic -no-reboot \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive if=pflash,format=raw,file="$work/vars.fd" \
    -drive file="$work/disk.img",if=virtio,format=raw >"$log" 2>&1 </dev/null &
  qpid=$!
  while ((SECONDS - t < 180)); do
    got=$(grep -ao 'Command line:.*rauc\.slot=[AB]' "$log" | grep -o 'rauc\.slot=[AB]' | head -1 || true)
    [ -z "$got" ] || break
    sleep 1
  done
  kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true; qpid=
  if [ "$got" = "rauc.slot=$want" ]; then
    printf 'ok   %-44s booted slot %s in %3d s; grubenv: %s\n' "$2" "$want" $((SECONDS - t)) "$(env_get)"
  else
    printf 'FAIL %-44s wanted slot %s, got "%s" (console: %s)\n' "$2" "$want" "$got" "$log"
    tail -5 "$log" | tr -d '\r'
    fail=1
  fi
}

env_set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
boot A "1 first boot"
env_set A_TRY=0                        # pecbox marked A good (rauc status mark-good)
env_set ORDER="B A" B_OK=1 B_TRY=0     # rauc install into B
boot B "2 after install into B"
boot A "3 B not marked good: fallback"
env_set A_TRY=0 ORDER="B A" B_OK=1 B_TRY=0
boot B "4 B again"
env_set B_TRY=0                        # rauc status mark-good on B
boot B "5 B marked good: stays on B"
echo "time: $((SECONDS - t0)) s"
exit $fail
