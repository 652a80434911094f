#!/usr/bin/env bash
# Install Apptainer on this Debian 12 test machine, for tests/test_container.py's real build.
#
# Debian 12 does not package Apptainer; Debian unstable does (apptainer 1.4.x), built for a
# newer glibc. So: apt downloads apptainer and libc6 from unstable (signatures checked with
# the installed debian-archive-keyring), the files are unpacked at the paths the binary was
# built for (/usr/bin, /usr/lib/x86_64-linux-gnu/apptainer, /etc/apptainer, /var/lib/apptainer),
# and its two programs are pointed at unstable's glibc, kept apart in $PREFIX/glibc.
# A centre installs Apptainer from its own packages instead; nothing here ships.
#
# Two settings for this machine (a Firecracker VM whose capability bounding set lacks
# CAP_SYS_RESOURCE, where Apptainer's root runs ask for every capability and stop):
#   - root default capabilities = no: root's `apptainer exec` keeps no capabilities;
#   - root gets a subordinate id range, so `apptainer build --fakeroot` runs %post in a user
#     namespace, where every capability exists.
# Idempotent; a no-op where apptainer already runs.
set -euo pipefail

PREFIX=/opt/braas-apptainer
PACKAGES=(squashfs-tools uidmap patchelf debootstrap docker-registry skopeo umoci)

if [[ $(id -u) -ne 0 ]]; then
    echo "apptainer/install.sh: must run as root (it uses apt-get)" >&2
    exit 1
fi
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/../apt.sh"
apt_install_missing apptainer/install.sh "${PACKAGES[@]}"

if ! apptainer --version >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    echo "deb http://deb.debian.org/debian unstable main" >"$work/sources.list"
    apt_unstable=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
                  -o APT::Sandbox::User=root)
    apt-get "${apt_unstable[@]}" update -qq
    (cd "$work/debs" && apt-get "${apt_unstable[@]}" download apptainer libc6)
    dpkg-deb -x "$work"/debs/apptainer_*.deb "$work/apptainer"
    dpkg-deb -x "$work"/debs/libc6_*.deb "$work/libc6"
    rm -rf "$PREFIX/glibc"
    mkdir -p "$PREFIX/glibc"
    cp -a "$work/libc6/usr/lib/x86_64-linux-gnu/." "$PREFIX/glibc/"
    cp -a "$work/apptainer/etc" "$work/apptainer/usr" "$work/apptainer/var" /
    for program in /usr/bin/apptainer /usr/lib/x86_64-linux-gnu/apptainer/bin/starter; do
        # DT_RPATH, not RUNPATH: it also wins when Apptainer re-runs itself with its own
        # LD_LIBRARY_PATH (seen when it unpacks an image for a non-root user).
        patchelf --set-interpreter "$PREFIX/glibc/ld-linux-x86-64.so.2" \
            --force-rpath --set-rpath "$PREFIX/glibc:/usr/lib/x86_64-linux-gnu" "$program"
    done
fi

sed -i 's/^root default capabilities = .*/root default capabilities = no/' /etc/apptainer/apptainer.conf
for file in /etc/subuid /etc/subgid; do
    grep -q '^root:' "$file" 2>/dev/null || echo "root:100000:65536" >>"$file"
done
echo "apptainer/install.sh: $(apptainer --version)"
