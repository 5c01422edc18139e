#!/usr/bin/env bash
# Static, stripped, size-optimised pecbox binaries for the appliance.
#   image/build-binary.sh [x86_64|aarch64|all]   (default: x86_64)
# Output: image/out/pecbox-x86_64, image/out/pecbox-aarch64 (gitignored).
# x86_64 uses the cargo on PATH (rustup); aarch64 needs Debian's rustc-web/cargo-web and
# libstd-rust-web-dev:arm64 (rustup cannot add targets here), installed on first use.
# Builds go to their own target dir ($PECBOX_APPLIANCE_TARGET, default
# target/appliance) so they never hold the lock of the shared target/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/image/out
mkdir -p "$out"
export CARGO_TARGET_DIR=${PECBOX_APPLIANCE_TARGET:-$root/target/appliance}
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

apt_install() { # packages... ; installs the missing ones
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

report() { # triple binary
  local bin=$2
  file -b "$bin" | grep -q 'statically linked\|static-pie linked' || { echo "$bin is not static: $(file -b "$bin")" >&2; exit 1; }
  printf '%s: %s bytes\n  %s\n' "$bin" "$(stat -c %s "$bin")" "$(file -b "$bin")"
}

build_x86_64() {
  apt_install file
  local t0=$SECONDS
  cargo build --locked --config .cargo/appliance.toml --profile appliance \
    --target x86_64-unknown-linux-gnu --bin pecbox
  cp "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/appliance/pecbox" "$out/pecbox-x86_64"
  echo "x86_64 build: $((SECONDS - t0)) s"
  report x86_64 "$out/pecbox-x86_64"
}

build_aarch64() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  apt_install file rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross qemu-user-static
  local t0=$SECONDS
  # Debian's cargo/rustc (1.96): /usr/bin before ~/.cargo/bin.
  PATH=/usr/sbin:/usr/bin:/sbin:/bin cargo build --locked --config .cargo/appliance.toml \
    --profile appliance --target aarch64-unknown-linux-gnu --bin pecbox
  cp "$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/appliance/pecbox" "$out/pecbox-aarch64"
  echo "aarch64 build: $((SECONDS - t0)) s"
  report aarch64 "$out/pecbox-aarch64"
}

case "${1:-x86_64}" in
  x86_64) build_x86_64 ;;
  aarch64) build_aarch64 ;;
  all) build_x86_64; build_aarch64 ;;
  *) echo "usage: $0 [x86_64|aarch64|all]" >&2; exit 2 ;;
esac
