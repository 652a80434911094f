#!/usr/bin/env bash
# Build and run aarch64 images on this x86_64 machine: qemu's aarch64 handler, and the base
# of an aarch64 render image (docker.io's debian:trixie-slim for arm64) in the local registry.
#
# Debian's qemu-user-static with binfmt-support registers qemu-aarch64 in the kernel's
# binfmt_misc (flags F: the kernel opens the interpreter once, so it also works inside
# containers and chroots). Then an arm64 program runs here, emulated, a few times slower.
# Docker Hub is out of reach, so the base is a STAND-IN as for x86_64 (start.sh): a minbase
# Debian 13 made by `debootstrap --arch arm64` (its second stage runs emulated, about 5
# minutes), its root file system kept in $CACHE (a second run takes seconds), pushed to the
# registry on 127.0.0.1:5000 as library/debian:trixie-slim with the arm64 platform, which
# `apptainer build --arch arm64` asks for. container/Apptainer.def builds unchanged.
#
#   bash .ci/apptainer/arm64.sh        (as root, after install.sh and start.sh)
#
# Exits 1 with one line where the kernel has no binfmt_misc (a container without it).
set -euo pipefail

REGISTRY=127.0.0.1:5000
IMAGE=library/debian:trixie-slim
CACHE=${BRAAS_CACHE:-/var/cache/braas-globus}/bases
ROOTFS_TAR=$CACHE/debian-trixie-arm64-minbase.tar

if [[ $(id -u) -ne 0 ]]; then
    echo "apptainer/arm64.sh: must run as root (binfmt_misc, debootstrap)" >&2
    exit 1
fi
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/../apt.sh"
apt_install_missing apptainer/arm64.sh qemu-user-static binfmt-support debootstrap skopeo umoci

binfmt=/proc/sys/fs/binfmt_misc
if [[ ! -e $binfmt/register ]]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
fi
if [[ ! -e $binfmt/register ]]; then
    echo "apptainer/arm64.sh: this kernel has no binfmt_misc: aarch64 code cannot run here" >&2
    exit 1
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if ! grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null; then
    echo "apptainer/arm64.sh: qemu-aarch64 is not registered in $binfmt" >&2
    exit 1
fi
echo "apptainer/arm64.sh: qemu-aarch64 registered ($(grep '^flags' "$binfmt/qemu-aarch64"))"

if skopeo inspect --tls-verify=false --override-arch arm64 \
        "docker://$REGISTRY/$IMAGE" 2>/dev/null | grep -q '"Architecture": "arm64"'; then
    echo "apptainer/arm64.sh: debian:trixie-slim (arm64) is served from $REGISTRY"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ ! -s $ROOTFS_TAR ]]; then
    started=$SECONDS
    echo "apptainer/arm64.sh: making the debian:trixie-slim (arm64) stand-in with debootstrap"
    if ! debootstrap --arch arm64 --variant=minbase trixie "$work/rootfs" \
            http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        exit 1
    fi
    # As Docker's image has it: no device nodes, no apt lists, no caches.
    rm -rf "$work"/rootfs/dev/* "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*
    mkdir -p "$CACHE"
    tar -C "$work/rootfs" -cf "$ROOTFS_TAR.partial" .
    mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    rm -rf "$work/rootfs"
    echo "apptainer/arm64.sh: debootstrap (arm64, emulated) took $(( SECONDS - started )) s"
fi
umoci init --layout "$work/oci"
umoci new --image "$work/oci:trixie-slim"
umoci unpack --image "$work/oci:trixie-slim" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" -xf "$ROOTFS_TAR"
umoci repack --image "$work/oci:trixie-slim" "$work/bundle"
umoci config --image "$work/oci:trixie-slim" --config.cmd bash --architecture arm64 --os linux
skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:trixie-slim" "docker://$REGISTRY/$IMAGE"
echo "apptainer/arm64.sh: debian:trixie-slim (arm64) is served from $REGISTRY"
