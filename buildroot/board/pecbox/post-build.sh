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

# RAUC (docs/updates.md), on boards whose defconfig enables BR2_PACKAGE_RAUC: the slot
# layout, the keyring bundles must chain to ($PECBOX_RAUC_KEYRING, else the development
# CA of image/keys/, created on first use), and the image version pecbox's anti-rollback
# compares with ($PECBOX_VERSION, else Cargo.toml's version).
RAUC_DIR="$(cd "$(dirname "$0")" && pwd)/rauc"
if [ -x "$TARGET_DIR/usr/bin/rauc" ] && [ -f "$RAUC_DIR/system-$BOARD.conf" ]; then
	install -D -m 0644 "$RAUC_DIR/system-$BOARD.conf" "$TARGET_DIR/etc/rauc/system.conf"
	keyring=$("$RAUC_DIR/../../../../image/rauc/dev-keys.sh" | awk '{ print $3 }')
	install -m 0644 "$keyring" "$TARGET_DIR/etc/rauc/keyring.pem"
	printf '%s\n' "${PECBOX_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$RAUC_DIR/../../../../Cargo.toml" | head -1)}" >"$TARGET_DIR/etc/pecbox-version"
	if [ "$BOARD" = rpi4 ]; then
		# U-Boot's environment (uboot.env on the boot partition) for fw_setenv.
		install -D -m 0644 "$RAUC_DIR/fw_env.config" "$TARGET_DIR/etc/fw_env.config"
		mkdir -p "$TARGET_DIR/uboot"
		grep -q '[[:space:]]/uboot[[:space:]]' "$TARGET_DIR/etc/fstab" ||
			printf '%s\n' 'LABEL=BOOT /uboot vfat defaults,nosuid,nodev,noexec,nofail 0 2' >>"$TARGET_DIR/etc/fstab"
	fi
fi

