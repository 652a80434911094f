"""The embedded default backend: a detached runner process on this machine.

``stage`` hard-links the kept objects into the job folder's ``in/``. ``start`` launches
``python -m braas_globus.dispatch.local_runner JOB`` in its own process group, so it
outlives the CLI; every Blender of the job runs inside that group. Tasks write straight
into the job folder, so ``collect`` has nothing to bring. ``cancel`` follows the job's
cancel marker (the worker stops Blender within a second when it sees it) by signalling
the whole group, so nothing of a canceled job keeps rendering.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from ..presets import LOCAL, Preset
from ..settings import Settings
from ..stage import LocalStager
from ..states import JobState, TaskState
from ..store import JobRecord, Store, StoreError
from ..worker import job_layout

if TYPE_CHECKING:
    from ..pack import Manifest
    from ..service import Reporter

RUNNER_MODULE = "braas_globus.dispatch.local_runner"


def runner_alive(job: JobRecord) -> bool:
    """Is the job's runner process still there (and not a reused pid or a zombie)?"""
    if not job.runner_pid:
        return False
    try:
        process = psutil.Process(job.runner_pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except psutil.Error:  # gone, or another user's process under a reused pid
        return False
    if not cmdline:
        return True  # exec in progress: a just-started runner has no command line yet
    return RUNNER_MODULE in cmdline and job.id in cmdline


class LocalBackend:
    poll_seconds = 0.5

    def __init__(self, store: Store, settings: Settings, preset: Preset = LOCAL) -> None:
        self.store = store
        self.settings = settings
        self.name = preset.name

    def task_slots(self) -> int:
        return self.settings.local_workers

    def stage(self, job: JobRecord, manifest: Manifest, reporter: Reporter | None = None
              ) -> None:
        LocalStager(self.settings.objects_dir).link(manifest, job.folder)

    def collect(self, job: JobRecord, reporter: Reporter | None = None) -> None:
        pass  # tasks write straight into the job folder

    def start(self, job: JobRecord) -> None:
        if runner_alive(job):
            return  # the running runner picks up newly queued tasks
        (job.folder / job_layout.CANCEL).unlink(missing_ok=True)
        log = (job.folder / job_layout.RUNNER_LOG).open("a")
        # The runner imports this package: where it was loaded from (an add-on's bundled
        # wheels are on Blender's sys.path only) must be on the child's path too.
        package_root = str(Path(__file__).resolve().parents[2])
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                      if p)
        env = {**os.environ, "BRAAS_HOME": str(self.settings.home), "PYTHONPATH": python_path}
        process = subprocess.Popen(
            [sys.executable, "-m", RUNNER_MODULE, job.id], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.store.set_runner(job.id, process.pid)

    def refresh(self, job: JobRecord) -> str | None:
        mine = self.store.tasks(job.id, preset=self.name)
        if runner_alive(job) or job.canceled:
            return None
        if all(t.state.is_final for t in mine):
            if job.state is JobState.RUNNING and job.split and job.backend == "local":
                # Its runner merges (a centre's parts: the service, after a download).
                return (f"job {job.id}'s parts are rendered but not merged (its local runner "
                        f"stopped); merge them with `braas-globus resume {job.id}`")
            return None
        warning = (f"job {job.id} is not rendering (its local runner stopped); "
                   f"continue it with `braas-globus resume {job.id}`")
        running = [t.index for t in mine if t.state is TaskState.RUNNING]
        try:
            for index in running:  # the runner was killed: those tasks did not finish
                self.store.end_task(job.id, index, TaskState.QUEUED,
                                    "interrupted: the runner stopped")
            if job.runner_pid is not None:
                self.store.set_runner(job.id, None)
        except StoreError as err:
            if err.kind != "full":
                raise
            # A full disk: say so, and leave the record as it is (resume settles it later),
            # so that `list` and `info` still answer.
            return f"{warning} (not recorded yet: {err})"
        return warning

    def cancel(self, job: JobRecord) -> None:
        if job.runner_pid is not None and runner_alive(job):  # runner_alive: a pid is set
            _stop_group(job.runner_pid)


def _stop_group(pgid: int, grace: float = 5.0) -> None:
    """TERM the runner's process group, then KILL whatever is left after ``grace`` s."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Does any live (not zombie) process remain in the process group ``pgid``?"""
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):  # ended while we looked
            continue
    return False
