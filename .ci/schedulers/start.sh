#!/usr/bin/env bash
# Start a real single-node Slurm on localhost (munged, slurmctld, slurmd) with partitions
# named like real clusters', plus the PBS Pro front end (slurm-wlm-torque + our adapters).
# Idempotent: stops an earlier instance by its pid files, rewrites the config, starts again
# and waits until the node really runs a job.
# Facts behind these choices: /work/shared/notes/single-node-slurm.md
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
PBS_BIN=${BRAAS_PBS_BIN:-/opt/braas-pbs/bin}

[[ $(id -u) -eq 0 ]] || die "must run as root (writes /etc/slurm, starts daemons)"
for cmd in munged slurmctld slurmd sinfo scontrol srun qsub; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found: run .ci/schedulers/install.sh first"
done

t0=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# An earlier instance would keep the old config: stop it first (by pid file, never by name).
bash "$HERE/stop.sh" --quiet

NODE=$(hostname -s)
CPUS=$(nproc)
MEM_KB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
REAL_MEM_MB=$(( MEM_KB * 9 / 10 / 1024 ))   # leave ~10% to the OS, else slurmd marks the node invalid

# --- munge: slurm authenticates every RPC with it -------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
# --force: a killed munged leaves its socket behind, and munged refuses to start over it.
runuser -u munge -- /usr/sbin/munged --force --pid-file="$MUNGE_PID" \
    </dev/null >>/var/log/munge/munged.out 2>&1 \
    || die "munged did not start: see /var/log/munge/munged.log"
munge -n </dev/null | unmunge >/dev/null || die "munge round trip failed: see /var/log/munge/munged.log"

# --- slurm.conf -------------------------------------------------------------------------------
install -d -o slurm -g slurm -m 755 "$SLURM_RUN" /var/lib/slurm/slurmctld /var/log/slurm
install -d -m 755 /var/lib/slurm/slurmd

# Partitions named like the real clusters' (all on this one node), with their real MaxTime,
# so tests and endpoint templates use real names. EnforcePartLimits=ALL rejects a job over
# MaxTime at submit, as the real centres do. No GRES: there is no GPU here.
#   IT4I Karolina/Barbora: qcpu qgpu qcpu_exp qgpu_exp qcpu_free qcpu_long
#   LUMI: standard standard-g small small-g dev-g
#   ALCF Polaris (PBS Pro, used through the PBS front end): debug debug-scaling prod preemptable
#   CINECA Leonardo: boost_usr_prod
PARTITIONS=(
    "qcpu MaxTime=2-00:00:00"
    "qgpu MaxTime=2-00:00:00"
    "qcpu_exp MaxTime=01:00:00"
    "qgpu_exp MaxTime=01:00:00"
    "qcpu_free MaxTime=18:00:00"
    "qcpu_long MaxTime=6-00:00:00"
    "standard MaxTime=2-00:00:00"
    "standard-g MaxTime=2-00:00:00"
    "small MaxTime=3-00:00:00"
    "small-g MaxTime=3-00:00:00"
    "dev-g MaxTime=03:00:00"
    "debug MaxTime=01:00:00 Default=YES"
    "debug-scaling MaxTime=01:00:00"
    "prod MaxTime=1-00:00:00"
    "preemptable MaxTime=3-00:00:00"
    "boost_usr_prod MaxTime=1-00:00:00"
)

conf=$(mktemp)
cat >"$conf" <<EOF
# Written by .ci/schedulers/start.sh: a single-node test cluster. Do not edit by hand.
ClusterName=braas-test
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# No cgroups in this VM: track processes by parent pid, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule a batch job as soon as it is submitted or a CPU frees (default: up to 3 s later).
SchedulerParameters=batch_sched_delay=0
# No slurmdbd: sacct does not work, finished jobs are read from scontrol (kept MinJobAge s)
# and from the jobcomp file.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=600
# A node that was down (daemon restart) comes back by itself once slurmd registers.
ReturnToService=2
EnforcePartLimits=ALL
KillWait=5
SlurmctldPidFile=${SLURMCTLD_PID}
SlurmdPidFile=${SLURMD_PID}
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM_MB} State=UNKNOWN
EOF
for p in "${PARTITIONS[@]}"; do
    echo "PartitionName=${p%% *} Nodes=${NODE} ${p#* } State=UP" >>"$conf"
done
install -m 644 "$conf" /etc/slurm/slurm.conf
rm -f "$conf"

# spank_pbs sets PBS_JOBID, PBS_ARRAY_INDEX, PBS_O_WORKDIR ... inside jobs, as PBS does.
SPANK_PBS=$(compgen -G '/usr/lib/*/slurm-wlm/spank_pbs.so' | head -n 1 || true)  # any arch
[[ -n $SPANK_PBS ]] || die "spank_pbs.so not found under /usr/lib/*/slurm-wlm: is slurm-wlm installed?"
install -d -m 755 /etc/slurm/plugstack.conf.d
grep -qs 'plugstack.conf.d' /etc/slurm/plugstack.conf \
    || echo 'include /etc/slurm/plugstack.conf.d/*.conf' >>/etc/slurm/plugstack.conf
echo "optional $SPANK_PBS" >/etc/slurm/plugstack.conf.d/pbs.conf

# --- PBS Pro front end: our qstat/qsub adapters first on PATH (tests prepend $PBS_BIN) --------
install -d -m 755 "$PBS_BIN"
install -m 755 "$HERE/qstat-pbspro" "$PBS_BIN/qstat"
install -m 755 "$HERE/qsub-pbspro" "$PBS_BIN/qsub"

# --- daemons ----------------------------------------------------------------------------------
start_s=$(date +%s)
slurmctld </dev/null >>/var/log/slurm/slurmctld.out 2>&1 \
    || die "slurmctld did not start: see /var/log/slurm/slurmctld.log"
slurmd </dev/null >>/var/log/slurm/slurmd.out 2>&1 \
    || die "slurmd did not start: see /var/log/slurm/slurmd.log"

# Ready means: slurmd registered after this start (sinfo alone can still show the old IDLE
# state), the node takes jobs, and then a real job step runs. All waits are bounded.
deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
resumed=0
while :; do
    line=$(scontrol show node "$NODE" -o 2>/dev/null || true)
    slurmd_start=$(sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p' <<<"$line")
    state=$(sed -n 's/.* State=\([^ ]*\).*/\1/p' <<<"$line")
    fresh=0
    [[ -n $slurmd_start && $slurmd_start != None ]] \
        && (( $(date -d "$slurmd_start" +%s) >= start_s )) && fresh=1
    if (( fresh )) && [[ $state =~ DRAIN|FAIL && $resumed == 0 ]]; then
        # Drained by an earlier run (e.g. "Kill task failed"): this is a fresh start.
        reason=$(sed -n 's/.* Reason=\(.*\)/\1/p' <<<"$line")
        echo "start.sh: node was $state (${reason:-no reason}): resuming it"
        scontrol update NodeName="$NODE" State=RESUME || true
        resumed=1
    elif (( fresh )) && [[ $state =~ ^(IDLE|MIXED|ALLOCATED) && ! $state =~ DRAIN|DOWN|FAIL ]]; then
        break
    fi
    if (( $(date +%s) >= deadline )); then
        die "node $NODE not ready after ${READY_TIMEOUT_S} s (State=${state:-?} SlurmdStartTime=${slurmd_start:-?}); see /var/log/slurm/slurmctld.log and slurmd.log"
    fi
    sleep 0.2
done

if [[ $state == ALLOCATED* ]]; then
    # Jobs kept from before the restart hold every CPU: a smoke job would only queue.
    echo "start.sh: node busy with earlier jobs (see squeue): skipped the srun smoke test"
else
    left=$(( deadline - $(date +%s) )); (( left > 5 )) || left=5
    out=$(timeout "$left" srun --quiet --partition=debug --time=1 --ntasks=1 \
        --job-name=start-smoke hostname 2>&1) \
        || die "smoke job 'srun hostname' failed or timed out after ${left} s (queued behind earlier jobs? see squeue): $out"
    [[ ${out##*$'\n'} == "$NODE"* ]] || die "smoke job printed '$out', expected '$NODE'"
fi

echo "start.sh: Slurm ready on $NODE (${CPUS} CPUs, ${REAL_MEM_MB} MB, ${#PARTITIONS[@]} partitions) in $(elapsed)"
echo "start.sh: PBS front end in $PBS_BIN (prepend it to PATH); stop with .ci/schedulers/stop.sh"
