#!/bin/bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT for every pecbox board: assembles the disk image with
# boot + rootfs A + rootfs B + data partitions (genimage), from rootfs.ext4 and the
# kernel (and, on the Pi, the firmware files) in BINARIES_DIR.
#   $1 = BINARIES_DIR, $2 = board (rpi4 | qemu-x86_64 | qemu-aarch64-virt)
set -euo pipefail
BINARIES_DIR=$1
BOARD=$2
BOARD_DIR="$(cd "$(dirname "$0")" && pwd)/$BOARD"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"

case "$BOARD" in
rpi4)
	# As buildroot's board/raspberrypi/post-image.sh: every firmware file, the DTBs
	# and the kernel named in config.txt go into the boot partition.
	files=()
	for i in "$BINARIES_DIR"/*.dtb "$BINARIES_DIR"/rpi-firmware/*; do
		files+=("${i#"$BINARIES_DIR"/}")
	done
	files+=("$(sed -n 's/^kernel=//p' "$BINARIES_DIR/rpi-firmware/config.txt")")
	# With RAUC (docs/updates.md) the firmware starts U-Boot, which runs boot.scr.
	[ ! -f "$BINARIES_DIR/boot.scr" ] || files+=("boot.scr")
	boot_files=$(printf '\\t\\t\\t"%s",\\n' "${files[@]}")
	cfg="$BINARIES_DIR/genimage.cfg"
	sed "s|#BOOT_FILES#|${boot_files}|" "$BOARD_DIR/genimage.cfg.in" >"$cfg"
	out=sdcard.img
	;;
qemu-x86_64 | qemu-aarch64-virt)
	cfg="$BOARD_DIR/genimage.cfg"
	out=disk.img
	;;
*)
	echo "post-image.sh: unknown board '$BOARD'" >&2
	exit 1
	;;
esac

# An empty rootpath: genimage only assembles prebuilt images (and creates the empty
# slot B and data filesystems).
rootpath_tmp="$(mktemp -d)"
trap 'rm -rf "$rootpath_tmp"' EXIT
rm -rf "$GENIMAGE_TMP"
genimage \
	--rootpath "$rootpath_tmp" \
	--tmppath "$GENIMAGE_TMP" \
	--inputpath "$BINARIES_DIR" \
	--outputpath "$BINARIES_DIR" \
	--config "$cfg"

case "$BOARD" in
qemu-x86_64)
	cat >"$BINARIES_DIR/start-qemu.sh" <<'Q'
#!/bin/sh
# Boots disk.img (slot A) with user networking; the box's ports on 127.0.0.1:10000+port.
cd "$(dirname "$0")"
exec qemu-system-x86_64 -M pc -m 1024 -smp 2 -nographic \
	-kernel bzImage -append "rootwait root=PARTUUID=5ec7b0a0-0000-4000-8000-00000000000a console=ttyS0" \
	-drive file=disk.img,if=virtio,format=raw \
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:10025-:25,hostfwd=tcp:127.0.0.1:10465-:465,hostfwd=tcp:127.0.0.1:10587-:587,hostfwd=tcp:127.0.0.1:10993-:993,hostfwd=tcp:127.0.0.1:10995-:995,hostfwd=tcp:127.0.0.1:10443-:443 \
	-device virtio-net-pci,netdev=net0 "$@"
Q
	;;
qemu-aarch64-virt)
	cat >"$BINARIES_DIR/start-qemu.sh" <<'Q'
#!/bin/sh
# Boots disk.img (slot A) with user networking; the box's ports on 127.0.0.1:10000+port.
cd "$(dirname "$0")"
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 -nographic \
	-kernel Image -append "rootwait root=PARTUUID=5ec7b0a0-0000-4000-8000-00000000000a console=ttyAMA0" \
	-drive file=disk.img,if=none,format=raw,id=hd0 -device virtio-blk-device,drive=hd0 \
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:10025-:25,hostfwd=tcp:127.0.0.1:10465-:465,hostfwd=tcp:127.0.0.1:10587-:587,hostfwd=tcp:127.0.0.1:10993-:993,hostfwd=tcp:127.0.0.1:10995-:995,hostfwd=tcp:127.0.0.1:10443-:443 \
	-device virtio-net-device,netdev=net0 "$@"
Q
	;;
esac
[ ! -e "$BINARIES_DIR/start-qemu.sh" ] || chmod +x "$BINARIES_DIR/start-qemu.sh"

# A signed RAUC bundle of this rootfs when the board has RAUC (post-build.sh put its
# system.conf and version in the target): image/bundle.sh with buildroot's host-rauc.
if [ -f "${TARGET_DIR:-/nonexistent}/etc/rauc/system.conf" ]; then
	PECBOX_BOARD=$BOARD PECBOX_ROOTFS="$BINARIES_DIR/rootfs.ext4" \
		PECBOX_BUNDLE_OUT="$BINARIES_DIR/pecbox-$BOARD.raucb" \
		"$(dirname "$0")/../../../image/bundle.sh" "$(cat "$TARGET_DIR/etc/pecbox-version")"
fi
echo "pecbox $BOARD image: $BINARIES_DIR/$out"
