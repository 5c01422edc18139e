#!/usr/bin/env bash
# Builds the bootable x86_64 test disk image from Debian packages, in one command:
#   image/build.sh
# Output (gitignored) in image/out/: pecbox-x86_64.img (GPT: boot + rootfs A + rootfs B +
# data, see genimage.cfg), vmlinuz + initrd.img + cmdline.txt for qemu's direct kernel
# boot (the RAUC issue brings a boot loader), and the static binary pecbox-x86_64.
# Needs root (mmdebstrap --mode=root, file ownership in the ext4 images); installs its
# Debian packages on first use. The image carries TEST-ONLY extras for smoke-test.sh:
# two mailboxes with known passwords and console report units (image/test-*).
# PECBOX_BIN=path uses a prebuilt static binary instead of image/build-binary.sh.
#   image/build.sh --rauc   the RAUC variant for image/update-test.sh, in image/out/rauc/:
#     + rauc rauc-service dbus grub-common squashfs-tools, the dm-verity/loop/squashfs/vfat
#     modules, the ESP mounted at /boot/efi, the update test driver unit (TEST ONLY).
#     Slot A, the grub ESP and grubenv are put in by image/update-test.sh (via bundle.sh).
set -euo pipefail
rauc=0
[ "${1:-}" != --rauc ] || rauc=1
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
[ "$(id -u)" = 0 ] || { echo "image/build.sh needs root (mmdebstrap --mode=root)" >&2; exit 1; }
t0=$SECONDS

missing=()
for p in mmdebstrap linux-image-amd64 genimage e2fsprogs dosfstools mtools fdisk file kmod; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$out"
imgout=$out
((rauc == 0)) || { imgout=$out/rauc; mkdir -p "$imgout"; }
if [ -n "${PECBOX_BIN:-}" ]; then
  [ "$(realpath "$PECBOX_BIN")" = "$out/pecbox-x86_64" ] || install -m 0755 "$PECBOX_BIN" "$out/pecbox-x86_64"
else
  image/build-binary.sh x86_64
fi
file -b "$out/pecbox-x86_64" | grep -q 'static' || { echo "pecbox-x86_64 is not static" >&2; exit 1; }
t_bin=$SECONDS

# The host's Debian kernel (linux-image-amd64) boots the image; its modules for the
# virtual network card go into the rootfs (the initrd has the disk and ext4 drivers).
kver=$(cd /boot && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
[ -f "/boot/initrd.img-$kver" ] || update-initramfs -c -k "$kver"

work=$(mktemp -d /tmp/pecbox-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

# 1. Debian bookworm minbase with systemd and udev.
include=systemd-sysv,udev,kmod
((rauc == 0)) || include=$include,rauc,rauc-service,dbus,grub-common,squashfs-tools
mmdebstrap --mode=root --variant=minbase --include="$include" \
  --quiet bookworm "$rootfs"
t_deb=$SECONDS

# 2. pecbox as buildroot installs it: binary, unit, sysusers entry, the board overlay
#    (config, /etc/hosts, network) and the post-build step (data mount in fstab).
install -D -m 0755 "$out/pecbox-x86_64" "$rootfs/usr/bin/pecbox"
install -D -m 0644 systemd/pecbox.service "$rootfs/usr/lib/systemd/system/pecbox.service"
install -D -m 0644 systemd/pecbox.sysusers "$rootfs/usr/lib/sysusers.d/pecbox.conf"
cp -a buildroot/board/pecbox/rootfs-overlay/. "$rootfs/"
chown -R 0:0 "$rootfs/etc/pecbox" "$rootfs/etc/hosts" "$rootfs/etc/systemd/network"
systemd-sysusers --root="$rootfs"
grep -q "^pecbox:x:480:480:" "$rootfs/etc/passwd" || { echo "no pecbox user (uid 480) in the image" >&2; exit 1; }
echo box >"$rootfs/etc/hostname"
printf '%s\n' 'PARTUUID=5ec7b0a0-0000-4000-8000-00000000000a / ext4 rw,errors=remount-ro 0 1' \
  >"$rootfs/etc/fstab"
buildroot/board/pecbox/post-build.sh "$rootfs" debian-x86_64-test
# qemu user networking's DNS (a real box gets its resolver from DHCP).
rm -f "$rootfs/etc/resolv.conf"
echo 'nameserver 10.0.2.3' >"$rootfs/etc/resolv.conf"
mods="virtio_net e1000 autofs4"
((rauc == 0)) || mods="$mods dm_verity dm_mod loop squashfs vfat nls_cp437 nls_ascii nls_iso8859_1"
for m in $mods; do
  modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r ko; do
  install -D -m 0644 "$ko" "$rootfs$ko"
done
cp "/lib/modules/$kver/modules.order" "/lib/modules/$kver/modules.builtin"* "$rootfs/lib/modules/$kver/"
depmod -b "$rootfs" "$kver"

# 3. TEST ONLY: known mailboxes and console reports for image/smoke-test.sh.
install -D -m 0644 image/test-mailboxes "$rootfs/etc/pecbox/test-mailboxes"
install -d "$rootfs/usr/local/lib/pecbox-test"
install -m 0755 image/test-bin/* "$rootfs/usr/local/lib/pecbox-test/"
install -m 0644 image/test-units/*.service "$rootfs/etc/systemd/system/"
install -D -m 0644 image/test-units/pecbox.service.d/50-test-console.conf \
  "$rootfs/etc/systemd/system/pecbox.service.d/50-test-console.conf"

systemctl --root="$rootfs" enable pecbox.service systemd-networkd.service \
  pecbox-test-report.service pecbox-test-mailboxes.service 2>/dev/null
if ((rauc)); then
  # The ESP (grub EFI + grubenv, which RAUC's grub backend edits) at /boot/efi.
  mkdir -p "$rootfs/boot/efi"
  echo 'PARTUUID=5ec7b0a0-0000-4000-8000-00000000b007 /boot/efi vfat defaults,nofail 0 0' >>"$rootfs/etc/fstab"
  install -m 0644 image/test-rauc/*.service "$rootfs/etc/systemd/system/"
  install -m 0755 image/test-rauc/update-driver "$rootfs/usr/local/lib/pecbox-test/"
  systemctl --root="$rootfs" enable pecbox-test-update.service 2>/dev/null
fi
# No first-boot questions on the console.
systemctl --root="$rootfs" mask systemd-firstboot.service 2>/dev/null
du -sh "$rootfs" | awk '{ print "rootfs content: " $1 }'

# 4. The disk: rootfs A from the tree, empty rootfs B and data, boot with the kernel.
mkdir -p "$work/in" "$work/empty"
mkfs.ext4 -q -L rootfs -d "$rootfs" "$work/in/rootfs.ext4" 1G
cp "/boot/vmlinuz-$kver" "$work/in/vmlinuz"
cp "/boot/initrd.img-$kver" "$work/in/initrd.img"
rm -f "$imgout/pecbox-x86_64.img"
genimage --rootpath "$work/empty" --tmppath "$work/genimage" --inputpath "$work/in" \
  --outputpath "$work/in" --config image/genimage.cfg >/dev/null
mv "$work/in/pecbox-x86_64.img" "$imgout/"
cp "$work/in/vmlinuz" "$work/in/initrd.img" "$imgout/"
echo "console=ttyS0 root=PARTUUID=5ec7b0a0-0000-4000-8000-00000000000a rw rootwait quiet" \
  >"$imgout/cmdline.txt"

sfdisk -l "$imgout/pecbox-x86_64.img" | sed -n '/^Device/,$p'
echo "image: $imgout/pecbox-x86_64.img, $(stat -c %s "$imgout/pecbox-x86_64.img") bytes apparent, $(du -k "$imgout/pecbox-x86_64.img" | cut -f1) KiB allocated"
echo "times: binary $((t_bin - t0)) s, debian rootfs $((t_deb - t_bin)) s, total $((SECONDS - t0)) s"
