# U-Boot boot script of the Raspberry Pi 4 box (compiled to boot.scr with mkimage,
# BR2_PACKAGE_HOST_UBOOT_TOOLS_BOOT_SCRIPT). RAUC's uboot backend: BOOT_ORDER ("A B"
# or "B A") and BOOT_A_LEFT / BOOT_B_LEFT (tries left) in U-Boot's environment. Each
# boot of a slot costs one try; `rauc status mark-good` (pecbox, once healthy) resets
# the slot's tries to 3. A slot with no tries left is skipped: the box falls back to
# the other slot.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv bootpart
setenv raucslot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootpart}" != "x"; then
    # already chosen
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      echo "Found valid slot A, ${BOOT_A_LEFT} attempts remaining"
      setenv bootpart 2
      setenv raucslot A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      echo "Found valid slot B, ${BOOT_B_LEFT} attempts remaining"
      setenv bootpart 3
      setenv raucslot B
    fi
  fi
done

if test -n "${bootpart}"; then
  setenv bootargs "root=PARTUUID=5ec7b0a0-0${bootpart} rootfstype=ext4 rootwait console=tty1 console=ttyAMA0,115200 rauc.slot=${raucslot}"
  saveenv
else
  echo "No valid slot found, resetting tries to 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

# The kernel comes from the chosen slot; the firmware's device tree is at ${fdt_addr}.
load mmc 0:${bootpart} ${kernel_addr_r} /boot/Image
booti ${kernel_addr_r} - ${fdt_addr}
