#!/usr/bin/env bash
# Sets up a Debian or Ubuntu machine to build simplex-pi images: host tools, arm64 emulation (binfmt_misc +
# qemu-user-static), Node.js and the npm dependencies. With --test, also what the test suite runs for real
# (tor, nftables, sshd, systemd-analyze, qemu-system-aarch64, an aarch64 assembler, minisign, cpio for
# the synthetic initramfs of the inspect-base test). zstd: inspect-base reads zstd-compressed initramfs (Trixie's default).
# Idempotent: installs only what is missing. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) want_tests=1 ;;
    *) echo "usage: ci/setup-host.sh [--test]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "ci/setup-host.sh needs root (apt-get, binfmt_misc): run it as 'sudo ci/setup-host.sh'" >&2
  exit 1
fi

packages=(
  qemu-user-static binfmt-support mmdebstrap arch-test fdisk e2fsprogs dosfstools mtools xz-utils zerofree
  util-linux mount coreutils dpkg ca-certificates git debian-archive-keyring zstd
)
if [ "$want_tests" = 1 ]; then
  packages+=(
    tor nftables openssh-server openssh-client systemd openssl qemu-system-arm ipxe-qemu
    binutils-aarch64-linux-gnu minisign file time cpio
    # mkpasswd: the Imager simulator writes a yescrypt password hash as Imager 2.x does.
    whois
  )
fi
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  packages+=(nodejs npm)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  # Packages such as tor and openssh-server start their daemons on installation. Tor would connect to the Tor
  # network and sshd would listen: neither may happen on a build or test host, so services are kept from
  # starting while apt runs (unless the host already has its own policy).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    own_policy=1
    trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# arm64 emulation for the image's chroot (an arm64 host runs it natively). binfmt_misc is not always mounted
# (containers, fresh machines).
if [ "$(uname -m)" = aarch64 ]; then
  :
elif [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ "$(uname -m)" != aarch64 ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
  fi
  if ! grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    echo "setup-host: the qemu-aarch64 binfmt entry has no F flag; reinstall Debian's qemu-user-static" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup-host: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup-host: ready ($(node --version), $(qemu-aarch64-static --version | head -n 1))"
