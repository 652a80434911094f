# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared by start.sh and stop.sh (sourced, not run): pid files and process helpers.
MUNGE_PID=/run/munge/munged.pid
SLURM_RUN=/run/slurm
SLURMCTLD_PID=$SLURM_RUN/slurmctld.pid
SLURMD_PID=$SLURM_RUN/slurmd.pid

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

# alive PID COMM: true when PID runs the program COMM. A zombie (state Z) counts as dead:
# this machine's PID 1 reaps orphans slowly. Checking comm guards against a reused pid.
alive() {
    local pid=$1 comm=$2 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # /proc/PID/stat is "pid (comm) state ...": comm may contain spaces, so cut at the last ')'.
    local state=${stat##*) }; state=${state%% *}
    [[ $state != Z && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]]
}

# stop_pidfile FILE COMM: TERM the process named in FILE, wait up to 10 s, then KILL.
stop_pidfile() {
    local file=$1 comm=$2 pid i
    [[ -f $file ]] || return 0
    pid=$(tr -dc '0-9' <"$file")
    if alive "$pid" "$comm"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do alive "$pid" "$comm" || break; sleep 0.1; done
        if alive "$pid" "$comm"; then
            echo "$(basename "$0"): $comm ($pid) ignored TERM for 10 s: sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do alive "$pid" "$comm" || break; sleep 0.1; done
            alive "$pid" "$comm" && die "$comm ($pid) still alive after KILL"
        fi
        [[ ${QUIET:-0} == 1 ]] || echo "$(basename "$0"): stopped $comm ($pid)"
    fi
    rm -f "$file"
}
