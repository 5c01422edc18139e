#!/bin/sh
# BR2_ROOTFS_POST_BUILD_SCRIPT for every pecbox board.
#   $1 = TARGET_DIR, $2 = board (rpi4 | qemu-x86_64 | qemu-aarch64-virt)
# The rootfs overlay, the users table and pecbox's own package already put the config,
# /etc/hosts, the network file, the user, the unit and its preset in place.
set -eu
TARGET_DIR=$1
BOARD=${2:-}

# The data partition (LABEL=pecbox-data, the last one of the disk) holds everything the
# daemon writes; root slots A/B hold only the system. nofail: a box whose data partition
# is missing still boots and gets its network (pecbox then does not start).
mkdir -p "$TARGET_DIR/var/lib/pecbox"
if ! grep -q '[[:space:]]/var/lib/pecbox[[:space:]]' "$TARGET_DIR/etc/fstab"; then
	printf '%s\n' 'LABEL=pecbox-data /var/lib/pecbox ext4 defaults,nosuid,nodev,noexec,nofail,x-systemd.device-timeout=30s 0 2' \
		>>"$TARGET_DIR/etc/fstab"
fi

# Where the box came from, for support.
printf 'PECBOX_BOARD=%s\n' "$BOARD" >"$TARGET_DIR/etc/pecbox-release"
