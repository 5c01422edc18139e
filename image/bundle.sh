#!/usr/bin/env bash
# Makes a signed RAUC bundle (format=verity) of the built x86_64 rootfs:
#   image/bundle.sh [VERSION]      → image/out/pecbox-x86_64-VERSION.raucb
# VERSION defaults to Cargo.toml's package version. The rootfs is slot A of
# image/out/pecbox-x86_64.img (image/build.sh), or $PECBOX_ROOTFS (an ext4 image).
# Before bundling, the rootfs copy gets what a RAUC-managed slot needs:
#   /etc/pecbox-version       the bundle's version (pecbox's anti-rollback reads it)
#   /etc/rauc/system.conf     image/rauc/system-$BOARD.conf
#   /etc/rauc/keyring.pem     the CA that bundles must chain to
#   /boot/vmlinuz, /boot/initrd.img  (x86_64: grub loads the kernel from the slot)
# Signing (image/rauc/dev-keys.sh, docs/updates.md): $PECBOX_RAUC_CERT + $PECBOX_RAUC_KEY
# (a file or a PKCS#11 URL) + $PECBOX_RAUC_KEYRING for a real key; otherwise a
# development CA and signing key, created on first use in image/keys/ (gitignored).
# Other knobs: PECBOX_BOARD (x86_64; rpi4, qemu-x86_64 for buildroot's rootfs.ext4), PECBOX_COMPATIBLE (pecbox-$PECBOX_BOARD, a wrong
# one only for tests), PECBOX_BUNDLE_OUT (output path), PECBOX_ROOTFS_OUT (also keep the
# prepared slot image there; image/grub-ab-test.sh uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
t0=$SECONDS

# Inside a buildroot build, its host tools (host-rauc, host-squashfs) come first.
[ -n "${HOST_DIR:-}" ] && PATH=$HOST_DIR/bin:$HOST_DIR/sbin:$PATH
missing=()
command -v rauc >/dev/null && command -v mksquashfs >/dev/null || missing+=(rauc squashfs-tools)
for p in e2fsprogs fdisk openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
board=${PECBOX_BOARD:-x86_64}
compatible=${PECBOX_COMPATIBLE:-pecbox-$board}
bundle=${PECBOX_BUNDLE_OUT:-$out/pecbox-$board-$version.raucb}
conf=image/rauc/system-$board.conf
[ -f "$conf" ] || conf=buildroot/board/pecbox/rauc/system-$board.conf
[ -f "$conf" ] || { echo "no $conf" >&2; exit 1; }

# --- signing material -------------------------------------------------------------
read -r cert key keyring < <(image/rauc/dev-keys.sh)

# --- the rootfs -------------------------------------------------------------------
work=$(mktemp -d /tmp/pecbox-bundle.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/in"
rootfs=$work/in/rootfs.ext4
if [ -n "${PECBOX_ROOTFS:-}" ]; then
  cp --sparse=always "$PECBOX_ROOTFS" "$rootfs"
else
  img=$out/pecbox-$board.img
  [ -f "$img" ] || { echo "no $img: run image/build.sh first (or set PECBOX_ROOTFS)" >&2; exit 1; }
  # Partition 2 (rootfs A): start and size in 512-byte sectors from sfdisk.
  read -r start size < <(sfdisk -J "$img" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][1]
print(p["start"], p["size"])')
  dd if="$img" of="$rootfs" bs=512 skip="$start" count="$size" conv=sparse status=none
fi

# Files put into the slot with debugfs (no loop mount needed).
printf '%s\n' "$version" >"$work/pecbox-version"
dfs=$work/debugfs.cmds
{
  echo "mkdir /etc/rauc"
  for f in /etc/pecbox-version /etc/rauc/system.conf /etc/rauc/keyring.pem; do echo "rm $f"; done
  echo "write $work/pecbox-version /etc/pecbox-version"
  echo "write $root/$conf /etc/rauc/system.conf"
  echo "write $keyring /etc/rauc/keyring.pem"
  for f in /etc/pecbox-version /etc/rauc/system.conf /etc/rauc/keyring.pem; do
    echo "set_inode_field $f mode 0100644"
    echo "set_inode_field $f uid 0"
    echo "set_inode_field $f gid 0"
  done
  if [ "$board" = x86_64 ] && [ -f "$out/vmlinuz" ]; then
    echo "mkdir /boot"
    echo "rm /boot/vmlinuz"
    echo "rm /boot/initrd.img"
    echo "write $out/vmlinuz /boot/vmlinuz"
    echo "write $out/initrd.img /boot/initrd.img"
  fi
} >"$dfs"
# The slot may land in A or B: no "/" line in fstab (the kernel mounts root= rw).
debugfs -R "cat /etc/fstab" "$rootfs" 2>/dev/null | awk '$2 != "/"' >"$work/fstab"
printf '%s\n' "rm /etc/fstab" "write $work/fstab /etc/fstab" "set_inode_field /etc/fstab mode 0100644" \
  "set_inode_field /etc/fstab uid 0" "set_inode_field /etc/fstab gid 0" >>"$dfs"
debugfs -w -f "$dfs" "$rootfs" >/dev/null 2>"$work/debugfs.err" || { cat "$work/debugfs.err" >&2; exit 1; }
got=$(debugfs -R "cat /etc/pecbox-version" "$rootfs" 2>/dev/null)
[ "$got" = "$version" ] || { echo "could not write /etc/pecbox-version into the rootfs" >&2; exit 1; }
e2fsck -fy "$rootfs" >/dev/null 2>&1 || [ $? -le 1 ] || { echo "e2fsck failed on the rootfs" >&2; exit 1; }

[ -z "${PECBOX_ROOTFS_OUT:-}" ] || cp --sparse=always "$rootfs" "$PECBOX_ROOTFS_OUT"

cat >"$work/in/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
description=pecbox $version for $board
build=$(date -u +%Y%m%dT%H%M%SZ)

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST

mkdir -p "$(dirname "$bundle")"
rm -f "$bundle"
rauc bundle --cert="$cert" --key="$key" --keyring="$keyring" "$work/in" "$bundle" \
  >"$work/rauc.log" 2>&1 || { cat "$work/rauc.log" >&2; exit 1; }
rauc info --keyring="$keyring" --output-format=json "$bundle" 2>/dev/null >"$work/info.json"
python3 - "$work/info.json" "$version" "$compatible" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
assert info["version"] == sys.argv[2] and info["compatible"] == sys.argv[3], info
PY
echo "bundle: $bundle ($(stat -c %s "$bundle") bytes), version $version, compatible $compatible, signed by $(openssl x509 -noout -subject -in "$cert" | sed 's/^subject=//')"
echo "time: $((SECONDS - t0)) s"
