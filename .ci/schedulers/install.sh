#!/usr/bin/env bash
# Install a real single-node Slurm (and its PBS/Torque front end) from Debian packages.
# Idempotent: does nothing when every package is already installed.
# Facts behind these choices: ../../../shared/notes/single-node-slurm.md
set -euo pipefail

PACKAGES=(munge slurm-client slurmctld slurmd slurm-wlm slurm-wlm-torque)

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (it uses apt-get)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg-query prints "install ok installed" only for a fully installed package.
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install.sh: already installed: ${PACKAGES[*]}"
    exit 0
fi

start_ns=$(date +%s%N)
echo "install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Quiet: apt's output is shown only when it fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; echo "install.sh: apt-get update failed" >&2; exit 1; }
# --no-install-recommends keeps the install small; the daemons are not started by apt here
# (policy-rc.d denies init scripts): start.sh starts them.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
    || { cat "$log" >&2; echo "install.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
printf 'install.sh: installed in %d.%01d s\n' $((ms / 1000)) $((ms % 1000 / 100))
