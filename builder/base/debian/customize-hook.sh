#!/bin/sh
# Finishes the Debian base once its packages are installed. mmdebstrap runs it on the host with the root
# filesystem as $1; arm64 programs run in it through qemu-user.
set -eu
root="$1"

# raspi-firmware writes cmdline.txt from this file. Left unset, it asks findmnt for the build host's root.
if ! grep -q '^ROOTPART=' "$root/etc/default/raspi-firmware"; then
  echo 'ROOTPART=LABEL=RASPIROOT' >> "$root/etc/default/raspi-firmware"
fi
for kernel in "$root"/boot/vmlinuz-*; do
  chroot "$root" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "${kernel##*/vmlinuz-}"
done

if [ ! -e "$root/etc/hosts" ]; then
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tsimplex-pi\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
fi

chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  simplex-pi-growroot.service
