#!/usr/bin/env bash
# Serve the recipe's base image, docker.io's debian:bookworm-slim, from this machine.
#
# Docker Hub is out of reach here (only Debian, PyPI and npm are). So a STAND-IN for
# debian:bookworm-slim is made with debootstrap (a minbase Debian 12 from Debian's own
# packages), put in a local registry on 127.0.0.1:5000, and /etc/containers/registries.conf
# names that registry as docker.io's mirror. container/Apptainer.def builds unchanged:
# `Bootstrap: docker` / `From: debian:bookworm-slim` pulls through the mirror.
# Idempotent: the image is made once; the registry is started when it is not answering.
set -euo pipefail

PREFIX=/opt/braas-apptainer
REGISTRY=127.0.0.1:5000
IMAGE=library/debian:bookworm-slim

if [[ $(id -u) -ne 0 ]]; then
    echo "apptainer/start.sh: must run as root" >&2
    exit 1
fi
mkdir -p "$PREFIX"
cat >"$PREFIX/registry.yml" <<CONFIG
version: 0.1
storage:
  filesystem:
    rootdirectory: $PREFIX/registry
http:
  addr: $REGISTRY
CONFIG
if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
    setsid docker-registry serve "$PREFIX/registry.yml" >"$PREFIX/registry.log" 2>&1 </dev/null &
    for _ in $(seq 50); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://$REGISTRY/v2/" >/dev/null || { cat "$PREFIX/registry.log" >&2; exit 1; }
fi

if ! skopeo inspect --tls-verify=false "docker://$REGISTRY/$IMAGE" >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "apptainer/start.sh: making the debian:bookworm-slim stand-in with debootstrap"
    if ! debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian \
            >"$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        exit 1
    fi
    # As Docker's image has it: no device nodes, no apt lists, no caches.
    rm -rf "$work"/rootfs/dev/* "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:bookworm-slim"
    umoci unpack --image "$work/oci:bookworm-slim" "$work/bundle" >/dev/null
    cp -a "$work/rootfs/." "$work/bundle/rootfs/"
    umoci repack --image "$work/oci:bookworm-slim" "$work/bundle"
    umoci config --image "$work/oci:bookworm-slim" --config.cmd bash
    skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:bookworm-slim" \
        "docker://$REGISTRY/$IMAGE"
fi

mkdir -p /etc/containers
cat >/etc/containers/registries.conf <<CONFIG
# Written by braas-globus .ci/apptainer/start.sh: docker.io through this machine's registry.
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "$REGISTRY"
insecure = true
CONFIG
echo "apptainer/start.sh: debian:bookworm-slim is served from $REGISTRY"
