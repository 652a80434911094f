"""Smoke tests of the real single-node Slurm and its PBS Pro front end (.ci/schedulers/).

They prove what the endpoint templates rely on: partitions with real clusters' names and
limits, `qsub` reading PBS Pro scripts, and Parsl's SlurmProvider and PBSProProvider seeing
their blocks queue, run, finish and be cancelled. Skipped, with the reason, where Slurm is
not running.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from parsl.jobs.states import JobState
from parsl.launchers import SingleNodeLauncher
from parsl.providers import PBSProProvider, SlurmProvider

from tests.schedulers import (
    REQUIRED_PARTITIONS,
    SlurmCluster,
    slurm_job,
    wait_for_slurm_states,
)

ACCOUNT = "braas-test"  # any string is accepted: there is no accounting database


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30, check=False)


def sbatch(*args: str) -> str:
    proc = run(["sbatch", "--parsable", *args])
    assert proc.returncode == 0, f"sbatch {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip().split(";")[0]


def qstat_json(*args: str) -> tuple[int, dict]:
    proc = run(["qstat", *args])
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def poll_until(
    check: Callable[[], JobState], wanted: JobState, timeout: float
) -> list[JobState]:
    """Call `check` until it returns `wanted`; return every state seen, in order."""
    seen: list[JobState] = []
    deadline = time.monotonic() + timeout
    while True:
        state = check()
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == wanted:
            return seen
        assert time.monotonic() < deadline, f"never reached {wanted.name}; saw {seen}"
        time.sleep(0.25)


# --- Slurm itself ----------------------------------------------------------------------------


def test_sbatch_to_each_named_partition_completes(slurm_cluster: SlurmCluster, tmp_path: Path):
    ids = {
        partition: sbatch(f"--partition={partition}", "--time=1", "--ntasks=1",
                          f"--account={ACCOUNT}", "--job-name=braas-smoke",
                          f"--output={tmp_path / partition}.out",
                          "--wrap", 'echo "$SLURM_JOB_PARTITION"')
        for partition in REQUIRED_PARTITIONS
    }
    states = wait_for_slurm_states(ids.values(), {"COMPLETED"}, timeout=60)
    assert states == dict.fromkeys(ids.values(), "COMPLETED")
    for partition in REQUIRED_PARTITIONS:
        assert (tmp_path / f"{partition}.out").read_text().strip() == partition


def test_partition_max_time_is_enforced_at_submit(slurm_cluster: SlurmCluster):
    assert slurm_cluster.partitions["qcpu_exp"] == "1:00:00"
    proc = run(["sbatch", "--partition=qcpu_exp", "--time=61", "--wrap", "true"])
    assert proc.returncode != 0
    assert "time limit" in proc.stderr.lower()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_job_over_its_time_limit_is_killed_as_timeout(pbs_front_end: Path):
    # --time is in whole minutes and slurmctld checks limits every ~30 s: about 60-90 s.
    job_id = sbatch("--partition=qcpu_exp", "--time=1", "--job-name=braas-timeout",
                    "--output=/dev/null", "--wrap", "sleep 600")
    wait_for_slurm_states([job_id], {"RUNNING"}, timeout=30)
    started = time.monotonic()
    state = wait_for_slurm_states([job_id], set(), timeout=150)[job_id]
    elapsed = time.monotonic() - started
    assert state == "TIMEOUT"
    assert elapsed > 50, f"killed after {elapsed:.0f} s, before its 1-minute limit"
    # What a PBS Pro client sees: finished, with PBS's walltime exit code.
    rc, document = qstat_json("-x", "-f", "-F", "json", job_id)
    assert rc == 0
    job = document["Jobs"][job_id]
    assert (job["job_state"], job["Exit_status"]) == ("F", -29)


# --- the PBS Pro front end -------------------------------------------------------------------


def test_qsub_pbs_script_sees_pbs_environment(pbs_front_end: Path, tmp_path: Path):
    out = tmp_path / "pbs.out"
    script = tmp_path / "job.pbs"
    script.write_text(
        "#!/bin/bash\n"
        "#PBS -N braas-pbs-smoke\n"
        f"#PBS -A {ACCOUNT}\n"
        "#PBS -l filesystems=home:eagle\n"  # Polaris asks for this; must not break qsub
        f"#PBS -o {out}\n"
        "#PBS -j oe\n"
        'echo "PBS_JOBID=$PBS_JOBID"\n'
        'echo "PBS_O_WORKDIR=$PBS_O_WORKDIR"\n'
        'echo "to stderr" >&2\n'
    )
    proc = run(["qsub", "-q", "debug", "-l", "walltime=00:01:00", "-l", "select=1:ncpus=1",
                str(script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = proc.stdout.strip()
    assert job_id.isdigit(), proc.stdout
    assert wait_for_slurm_states([job_id], {"COMPLETED"}, timeout=30) == {job_id: "COMPLETED"}
    job = slurm_job(job_id)
    assert (job["Partition"], job["TimeLimit"], job["Account"], job["JobName"]) == (
        "debug", "00:01:00", ACCOUNT, "braas-pbs-smoke")
    text = out.read_text()  # the script's own -o path, joined with stderr by -j oe
    assert f"PBS_JOBID={job_id}\n" in text
    assert f"PBS_O_WORKDIR={tmp_path}\n" in text
    assert "to stderr" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.pbs", "pbs.out"]


def test_qsub_wrapper_moves_project_line_that_sbatch_rejects(pbs_front_end: Path, tmp_path: Path):
    script = tmp_path / "project.pbs"
    script.write_text(f"#!/bin/bash\n#PBS -P braas-proj\n#PBS -o {tmp_path}/p.out\necho ran\n")
    # Why the wrapper exists: the torque front end alone fails on "#PBS -P".
    # If this starts passing, drop the -P rewrite from .ci/schedulers/qsub-pbspro.
    bare = run(["/usr/bin/qsub", "-q", "debug", str(script)], cwd=tmp_path)
    assert bare.returncode != 0 and "invalid option" in bare.stdout
    proc = run(["qsub", "-q", "debug", str(script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = proc.stdout.strip()
    assert wait_for_slurm_states([job_id], {"COMPLETED"}, timeout=30) == {job_id: "COMPLETED"}
    assert (tmp_path / "p.out").read_text() == "ran\n"
    assert "#PBS -P braas-proj" in script.read_text()  # the caller's file is never changed


def test_qstat_json_reports_pbs_states_and_exit_status(pbs_front_end: Path, tmp_path: Path):
    script = tmp_path / "fail.pbs"
    script.write_text(f"#!/bin/bash\n#PBS -o {tmp_path}/fail.out\n#PBS -j oe\nexit 3\n")
    job_id = run(["qsub", "-q", "prod", "-l", "walltime=00:01:00", str(script)],
                 cwd=tmp_path).stdout.strip()
    assert wait_for_slurm_states([job_id], set(), timeout=30) == {job_id: "FAILED"}

    rc, document = qstat_json("-x", "-f", "-F", "json", job_id)
    assert rc == 0
    job = document["Jobs"][job_id]
    assert (job["job_state"], job["Exit_status"], job["queue"]) == ("F", 3, "prod")
    assert job["Resource_List"]["walltime"] == "00:01:00"
    # As PBS Pro: a finished job needs -x; an unknown id is an error, not an empty answer.
    rc, document = qstat_json("-f", "-F", "json", job_id)
    assert (rc, "Jobs" in document) == (35, False)
    rc, _ = qstat_json("-x", "-f", "-F", "json", "999999")
    assert rc == 153
    # Anything but -F json is the torque qstat's.
    assert run(["qstat", job_id]).stdout.splitlines()[0].startswith("Job id")


# --- Parsl's providers -----------------------------------------------------------------------


def test_parsl_slurm_provider_submit_status_cancel(slurm_cluster: SlurmCluster, tmp_path: Path):
    # exclusive=False: the default asks for the whole node and waits behind every other job.
    provider = SlurmProvider(partition="qcpu", account=ACCOUNT, exclusive=False,
                             walltime="00:02:00", init_blocks=0, cmd_timeout=30)
    provider.script_dir = str(tmp_path)
    done_id = provider.submit("echo parsl-slurm-block-ran", tasks_per_node=1,
                              job_name="braas-smoke")
    long_id = provider.submit("sleep 120", tasks_per_node=1, job_name="braas-smoke-long")

    def state(job_id: str) -> Callable[[], JobState]:
        return lambda: provider.status([job_id])[0].state

    assert poll_until(state(long_id), JobState.RUNNING, timeout=30)[-1] == JobState.RUNNING
    poll_until(state(done_id), JobState.COMPLETED, timeout=30)
    assert slurm_job(done_id)["JobState"] == "COMPLETED"
    stdout_path = provider.resources[done_id]["job_stdout_path"]
    assert "parsl-slurm-block-ran" in Path(stdout_path).read_text()

    assert provider.cancel([long_id]) == [True]
    assert provider.status([long_id])[0].state == JobState.CANCELLED
    assert wait_for_slurm_states([long_id], set(), timeout=15) == {long_id: "CANCELLED"}


def test_parsl_pbspro_provider_submit_status_cancel(pbs_front_end: Path, tmp_path: Path):
    provider = PBSProProvider(queue="debug", account=ACCOUNT, walltime="00:02:00",
                              cpus_per_node=1, launcher=SingleNodeLauncher(),
                              scheduler_options="#PBS -l filesystems=home:eagle",
                              init_blocks=0, cmd_timeout=30)
    provider.script_dir = str(tmp_path)
    job_id = provider.submit("sleep 3; echo parsl-pbs-block-ran", tasks_per_node=1,
                             job_name="braas-smoke")

    def state(job_id: str) -> Callable[[], JobState]:
        return lambda: provider.status([job_id])[0].state

    seen = poll_until(state(job_id), JobState.COMPLETED, timeout=45)
    assert JobState.RUNNING in seen, f"the provider never saw its block run: {seen}"
    assert slurm_job(job_id)["JobState"] == "COMPLETED"
    # The block's output is where the provider's "#PBS -o" line put it.
    stdout_path = provider.resources[job_id]["job_stdout_path"]
    assert "parsl-pbs-block-ran" in Path(stdout_path).read_text()

    long_id = provider.submit("sleep 120", tasks_per_node=1, job_name="braas-smoke-long")
    poll_until(state(long_id), JobState.RUNNING, timeout=30)
    assert provider.cancel([long_id]) == [True]  # qdel
    assert wait_for_slurm_states([long_id], set(), timeout=15) == {long_id: "CANCELLED"}
    assert provider.status([long_id])[0].state == JobState.COMPLETED  # qstat -x: F
