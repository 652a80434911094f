#!/usr/bin/env bash
# Stop the single-node Slurm started by start.sh: slurmd, slurmctld, then munged, each by the
# pid in its pid file (never by name, so nothing else on the machine is touched).
# Jobs still running are left to slurmstepd; the state is kept for the next start.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

QUIET=0
[[ ${1:-} == --quiet ]] && QUIET=1
[[ $(id -u) -eq 0 ]] || die "must run as root"

stop_pidfile "$SLURMD_PID" slurmd
stop_pidfile "$SLURMCTLD_PID" slurmctld
stop_pidfile "$MUNGE_PID" munged
