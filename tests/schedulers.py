"""Fixtures and helpers for tests that need the real single-node Slurm and its PBS front end.

The cluster is started outside pytest by `.ci/schedulers/start.sh` (as root; install the
packages first with `.ci/schedulers/install.sh`). Where it is not running, the tests that need
it are skipped with that instruction in the reason. With BRAAS_START_SLURM=1 (CI), the
`slurm_cluster` fixture runs both scripts itself when Slurm does not answer.

Import the fixtures into a conftest.py or a test module:

    from tests.schedulers import pbs_front_end, slurm_cluster  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEDULERS_DIR = REPO / ".ci" / "schedulers"
#: Where start.sh installs the PBS Pro adapters (qstat, qsub); tests prepend it to PATH.
PBS_BIN = Path(os.environ.get("BRAAS_PBS_BIN", "/opt/braas-pbs/bin"))
START_HINT = (
    "run `.ci/schedulers/install.sh && .ci/schedulers/start.sh` as root "
    "(or set BRAAS_START_SLURM=1 to let the tests do it)"
)

#: Partitions named like the real clusters' that start.sh defines and tests may rely on.
REQUIRED_PARTITIONS = ("qcpu", "qgpu", "qcpu_exp", "standard", "standard-g", "debug", "prod")

#: Slurm states after which a job never runs again.
SLURM_FINAL_STATES = frozenset({
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "OUT_OF_MEMORY",
})


@dataclass(frozen=True)
class SlurmCluster:
    """What the tests may use of the running cluster."""

    node: str
    cpus: int
    #: partition name -> MaxTime as sinfo prints it ("1:00:00", "2-00:00:00")
    partitions: dict[str, str]


def _run(argv: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _sinfo() -> tuple[SlurmCluster | None, str]:
    """The cluster, or None and why not."""
    if shutil.which("sinfo") is None:
        return None, "Slurm is not installed (no `sinfo` on PATH)"
    try:
        # A live slurmctld answers in milliseconds; a dead one makes sinfo retry for ~10 s.
        proc = _run(["sinfo", "--noheader", "--format=%R|%l|%c|%N|%T"], timeout=5)
    except subprocess.TimeoutExpired:
        return None, "`sinfo` did not answer within 5 s: slurmctld is not running"
    if proc.returncode != 0:
        return None, f"`sinfo` failed: {proc.stderr.strip() or proc.stdout.strip()}"
    partitions: dict[str, str] = {}
    node, cpus, states = "", 0, set()
    for line in proc.stdout.splitlines():
        name, max_time, cpu_count, nodes, state = line.split("|")
        partitions[name] = max_time
        node, cpus = nodes, int(cpu_count.rstrip("+"))
        states.add(state.rstrip("*~#!%$@^-"))
    if not partitions:
        return None, "`sinfo` lists no partitions"
    usable = {"idle", "mixed", "allocated", "completing"}
    if not states & usable:
        return None, f"the node is not usable (state {', '.join(sorted(states))})"
    missing = [p for p in REQUIRED_PARTITIONS if p not in partitions]
    if missing:
        return None, f"partitions {', '.join(missing)} are missing: slurm.conf is not ours"
    return SlurmCluster(node=node, cpus=cpus, partitions=partitions), ""


def _start_cluster() -> str:
    """Run install.sh and start.sh; return their output (raises on failure)."""
    output = []
    for script in ("install.sh", "start.sh"):
        proc = _run(["bash", str(SCHEDULERS_DIR / script)], timeout=600)
        output.append(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed (exit {proc.returncode}):\n{''.join(output)}")
    return "".join(output)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The real single-node Slurm started by .ci/schedulers/start.sh; skips when absent."""
    cluster, why = _sinfo()
    if cluster is None and os.environ.get("BRAAS_START_SLURM") == "1":
        print(_start_cluster())
        cluster, why = _sinfo()
    if cluster is None:
        pytest.skip(f"no single-node Slurm: {why}; {START_HINT}")
    return cluster


@pytest.fixture
def pbs_front_end(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with the PBS Pro adapters (qstat -F json, qsub) first; returns their folder.

    qdel and the other PBS commands come from slurm-wlm-torque, further down PATH.
    """
    missing = [name for name in ("qstat", "qsub") if not (PBS_BIN / name).is_file()]
    if missing or shutil.which("qdel") is None:
        pytest.skip(f"no PBS front end in {PBS_BIN} (missing {', '.join(missing) or 'qdel'}); "
                    f"{START_HINT}")
    monkeypatch.setenv("PATH", f"{PBS_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return PBS_BIN


def slurm_job(job_id: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict (JobState, ExitCode, Partition, TimeLimit, ...).

    Finished jobs stay visible for MinJobAge (600 s) on this cluster: there is no sacct.
    """
    proc = _run(["scontrol", "show", "job", "-o", job_id])
    if proc.returncode != 0:
        raise LookupError(f"scontrol show job {job_id}: {proc.stderr.strip()}")
    fields: dict[str, str] = {}
    for word in proc.stdout.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def wait_for_slurm_states(
    job_ids: Iterable[str], wanted: Iterable[str], timeout: float, poll: float = 0.25
) -> dict[str, str]:
    """Wait until every job is in one of `wanted` (or final); return {job id: state}.

    Raises AssertionError naming each job's state when the time runs out.
    """
    wanted = set(wanted)
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        states = {job_id: slurm_job(job_id).get("JobState", "?") for job_id in ids}
        if all(s in wanted or s in SLURM_FINAL_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not in {sorted(wanted)} after {timeout} s: {states}")
        time.sleep(poll)
