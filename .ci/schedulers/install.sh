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

# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/../apt.sh"
apt_install_missing install.sh "${PACKAGES[@]}"
