#!/usr/bin/env bash
# A Blender with a real window for tests/test_addon_window.py: Debian trixie's `blender`
# (4.3, on the system Python 3.13), Xvfb and ImageMagick, in a debootstrapped root that the
# test enters with chroot. Debian 12's own blender (3.4) is too old for extensions, and PyPI's
# bpy has no window (its timers never fire). The steps were checked in
# ../shared/notes/real-window.md.
#
#   bash .ci/window/install.sh [ROOT]      (as root; default ROOT: $BRAAS_WINDOW_ROOT or
#                                          /var/cache/braas-globus/blender-window/trixie)
#
# ROOT is kept between runs (about 2.3 GB): a ready root, marked by ROOT/.braas-ready with
# the package list it holds, is left alone (a second or two); a cold one takes about 6
# minutes (debootstrap, then about 380 packages). An unfinished root is made again.
set -euo pipefail

ROOT=${1:-${BRAAS_WINDOW_ROOT:-/var/cache/braas-globus/blender-window/trixie}}
MIRROR=http://deb.debian.org/debian
PACKAGES=(blender xvfb imagemagick)
READY="trixie ${PACKAGES[*]}"
# dpkg-query's ${Version} and the namespace's script are for them to expand, not this shell.
# shellcheck disable=SC2016
version() { chroot "$ROOT" dpkg-query -W -f='blender ${Version}' blender; }

if [[ $(id -u) -ne 0 ]]; then
    echo "window/install.sh: must run as root (debootstrap, chroot)" >&2
    exit 1
fi
if [[ -f $ROOT/.braas-ready && $(cat "$ROOT/.braas-ready") == "$READY" ]]; then
    echo "window/install.sh: ready: $ROOT ($(version))"
    exit 0
fi

# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/../apt.sh"
apt_install_missing window/install.sh debootstrap

started=$SECONDS
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
echo "window/install.sh: debootstrap took $(( SECONDS - started )) s"

# apt inside the root needs /proc, /dev and name resolution; the mounts live in a mount
# namespace of their own, so they end with it (nothing to unmount, even after a failure).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"  # start no daemon
chmod +x "$ROOT/usr/sbin/policy-rc.d"
# shellcheck disable=SC2016
unshare --mount --propagation private -- sh -eu -c '
    root=$1
    shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t sysfs sysfs "$root/sys"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    chroot "$root" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    chroot "$root" apt-get clean
' window-install "$ROOT" "${PACKAGES[@]}"
echo "$READY" >"$ROOT/.braas-ready"
echo "window/install.sh: made $ROOT in $(( SECONDS - started )) s" \
     "($(version), $(du -sh "$ROOT" | cut -f1))"
