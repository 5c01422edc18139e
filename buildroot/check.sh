#!/usr/bin/env bash
# Checks this BR2_EXTERNAL tree against a buildroot source tree:
#   buildroot/check.sh BUILDROOT_DIR
# 1. BR2_EXTERNAL loads (list-defconfigs shows the pecbox defconfigs);
# 2. each configs/*_defconfig expands with `make <name>_defconfig`, and every line of it
#    survives in .config (kconfig silently drops a symbol whose dependencies fail);
# 3. `savedefconfig` round-trips: it gives back exactly the defconfig's settings;
# 4. the pecbox package parses (printvars) and the genimage configs assemble a disk from
#    dummy inputs (when genimage, mkfs.ext4, mkfs.vfat and mtools are installed).
# Builds nothing and downloads nothing; output goes to a temporary folder.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1/Config.in" ] || [ ! -d "$1/package" ]; then
	echo "usage: $0 BUILDROOT_DIR   (a buildroot source tree, e.g. a 2026.02.x checkout)" >&2
	exit 2
fi
BR=$(cd "$1" && pwd)
EXT=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; fail=1; }

version=$(make -s -C "$BR" print-version 2>/dev/null || true)
echo "buildroot $version at $BR"

# 1. the external tree loads
if make -s -C "$BR" BR2_EXTERNAL="$EXT" O="$work/list" list-defconfigs >"$work/list.txt" 2>&1; then
	ok "BR2_EXTERNAL=$EXT loads (name PECBOX)"
else
	bad "BR2_EXTERNAL does not load:"; sed 's/^/     /' "$work/list.txt"
fi
defconfigs=()
for f in "$EXT"/configs/*_defconfig; do defconfigs+=("$(basename "$f")"); done
for d in "${defconfigs[@]}"; do
	grep -q "^  $d " "$work/list.txt" || bad "list-defconfigs does not show $d"
done

# Settings of a defconfig: BR2_ lines and "is not set" lines, sorted.
settings() { grep -E '^(BR2_[A-Za-z0-9_]+=|# BR2_[A-Za-z0-9_]+ is not set$)' "$1" | sort; }

for d in "${defconfigs[@]}"; do
	out="$work/${d%_defconfig}"
	# 2. expands
	if ! make -s -C "$BR" BR2_EXTERNAL="$EXT" O="$out" "$d" >"$out.log" 2>&1; then
		bad "$d does not expand:"; sed 's/^/     /' "$out.log"; continue
	fi
	missing=$(settings "$EXT/configs/$d" | while IFS= read -r line; do
		grep -qxF -- "$line" "$out/.config" || printf '     %s\n' "$line"
	done)
	if [ -n "$missing" ]; then
		bad "$d: lines not in the resulting .config (dropped or changed by kconfig):"
		printf '%s\n' "$missing"
	else
		ok "$d expands; every line is kept"
	fi
	for must in BR2_PACKAGE_PECBOX=y BR2_INIT_SYSTEMD=y; do
		grep -qx "$must" "$out/.config" || bad "$d: $must not in .config"
	done
	# 3. savedefconfig round-trips
	make -s -C "$BR" O="$out" savedefconfig BR2_DEFCONFIG="$out/saved_defconfig" >>"$out.log" 2>&1
	if diff <(settings "$EXT/configs/$d") <(settings "$out/saved_defconfig") >"$out.diff"; then
		ok "$d: savedefconfig round-trips"
	else
		bad "$d: savedefconfig differs (< ours, > savedefconfig):"; sed 's/^/     /' "$out.diff"
	fi
	# 4a. the package parses
	site=$(make -s -C "$BR" O="$out" printvars VARS='PECBOX_SITE_METHOD PECBOX_SITE' 2>&1 | tr '\n' ' ')
	case "$site" in
	*PECBOX_SITE_METHOD=local*) ok "$d: package pecbox: $site" ;;
	*) bad "$d: package pecbox does not parse: $site" ;;
	esac
done

# 4b. genimage configs, on dummy inputs
if command -v genimage >/dev/null && command -v mkfs.ext4 >/dev/null \
	&& command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
	for board in qemu-x86_64 qemu-aarch64-virt rpi4; do
		g="$work/genimage-$board"; mkdir -p "$g/in" "$g/root"
		truncate -s 512M "$g/in/rootfs.ext4"; mkfs.ext4 -q -L rootfs "$g/in/rootfs.ext4"
		echo kernel >"$g/in/bzImage"; echo kernel >"$g/in/Image"
		cfg="$EXT/board/pecbox/$board/genimage.cfg"
		if [ "$board" = rpi4 ]; then
			mkdir -p "$g/in/rpi-firmware"
			for f in start4.elf fixup4.dat cmdline.txt config.txt; do echo x >"$g/in/rpi-firmware/$f"; done
			echo x >"$g/in/bcm2711-rpi-4-b.dtb"
			files='\t\t\t"bcm2711-rpi-4-b.dtb",\n\t\t\t"rpi-firmware/start4.elf",\n\t\t\t"rpi-firmware/fixup4.dat",\n\t\t\t"rpi-firmware/cmdline.txt",\n\t\t\t"rpi-firmware/config.txt",\n\t\t\t"Image",\n'
			sed "s|#BOOT_FILES#|$files|" "$EXT/board/pecbox/rpi4/genimage.cfg.in" >"$g/genimage.cfg"
			cfg="$g/genimage.cfg"
		fi
		if genimage --rootpath "$g/root" --tmppath "$g/tmp" --inputpath "$g/in" \
			--outputpath "$g/in" --config "$cfg" >"$g.log" 2>&1; then
			img=$(ls "$g/in"/*.img)
			ok "genimage $board: $(basename "$img") $(sfdisk -d "$img" 2>/dev/null | grep -c '^/') partitions"
		else
			bad "genimage $board:"; sed 's/^/     /' "$g.log"
		fi
	done
else
	echo "skip genimage check (apt-get install genimage e2fsprogs dosfstools mtools)"
fi

if [ "$fail" = 0 ]; then echo "buildroot check: all passed"; else echo "buildroot check: FAILED"; fi
exit "$fail"
